import type { Server } from 'node:http';
import { GuestLimits } from '../frontend/guest-limits.js';
import { packageVersion } from '../package-root.js';
import { BackendPool } from './backend-pool.js';
import { normalizeConfig } from './config/normalize.js';
import type { ProxyConfig } from './config/types.js';
import { listenerFor } from './guest-listeners.js';
import { redactUrl } from './log.js';
import type { ProxyMetrics } from './metrics.js';
import { guestConnectionCap } from './open-files.js';
import { preflight, refuseProblems } from './preflight.js';
import { RunningProxy } from './running-proxy.js';

/** Binds the guest listeners, loads the backends, and returns the running proxy. */
export async function startProxy(input: ProxyConfig): Promise<RunningProxy> {
  const config = normalizeConfig(input);
  const { log } = config;
  const backends = new BackendPool(config.backendCallTimeoutMs, log);
  // Every problem (a bad option, a socket in use, a plugin that will not load) is found before anything is bound.
  const checked = await preflight(config, backends, { kind: 'start' });
  refuseProblems(checked);
  const { plans, prepared } = checked;
  const listeners = plans.map((p) => listenerFor(p, log));
  let server: import('../frontend/server.js').ProxyServer | undefined;
  let metrics: { metrics: ProxyMetrics; server: Server; url: string } | undefined;
  try {
    for (const l of listeners) await l.listen();
    // Lazy loading: the listeners bind first because loading the session
    // code, the schemas and a backend (HTTP client, a plugin) takes longer
    // than binding, and QEMU may be waiting to connect. Guests that connect
    // meanwhile wait in their listener with their bytes buffered.
    const { ProxyServer } = await import('../frontend/server.js');
    await backends.create(prepared);
    const maxGuestConnections = guestConnectionCap();
    server = new ProxyServer({ log, limits: new GuestLimits(config.guestLimits, maxGuestConnections) });
    if (config.metrics !== undefined) {
      const m = await import('./metrics.js');
      const proxyMetrics = new m.ProxyMetrics(server, log);
      const served = await m.serveMetrics(proxyMetrics, config.metrics, log);
      metrics = { metrics: proxyMetrics, ...served };
      log.info({ url: served.url }, 'serving metrics');
    }
    const proxy = new RunningProxy(server, backends, config.backendCallTimeoutMs, log, metrics);
    for (const [i, plan] of plans.entries()) proxy.attach(plan, listeners[i]!);
    const first = plans[0]!;
    log.info(
      {
        version: packageVersion(),
        node: process.version,
        backend: proxy.backendName,
        listeners: plans.length,
        ...(Number.isFinite(maxGuestConnections) ? { maxGuestConnections } : {}),
        ...describeOptions(first.backendOptions),
      },
      'aproxy ready',
    );
    // Load what the first guest will need (HTTP client) now that the sockets are up.
    setImmediate(() => backends.warm());
    return proxy;
  } catch (err) {
    // Nothing was attached yet: the listeners are closed here, not by the server.
    metrics?.server.close();
    await server?.close();
    await Promise.all(listeners.map((l) => l.close()));
    await backends.close();
    throw err;
  }
}

/** What the ready line says about the backend's options: the URL without credentials, nothing else. */
function describeOptions(raw: Readonly<Record<string, unknown>>): Record<string, string> {
  return typeof raw.url === 'string' ? { url: redactUrl(raw.url) } : {};
}
