import type { Server } from 'node:http';
import { GuestLimits } from '../frontend/guest-limits.js';
import { BackendPool } from './backend-pool.js';
import { DEFAULT_BACKEND_CALL_TIMEOUT_MS, DEFAULT_GUEST_LIMITS } from './config.js';
import { listenerFor } from './guest-listeners.js';
import { planListeners } from './listener-plan.js';
import { redactUrl } from './log.js';
import type { ProxyMetrics } from './metrics.js';
import type { ProxyConfig } from './proxy-config.js';
import { RunningProxy } from './running-proxy.js';

export { redactUrl } from './log.js';
export type { ListenerConfig, ListenerSettings, ProxyConfig, ReloadResult } from './proxy-config.js';
export { RunningProxy } from './running-proxy.js';

/** Binds the guest listeners, loads the backends, and returns the running proxy. */
export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const log = config.log;
  const callTimeoutMs = config.backendCallTimeoutMs ?? DEFAULT_BACKEND_CALL_TIMEOUT_MS;
  const plans = planListeners(config);
  const backends = new BackendPool(callTimeoutMs, log);
  // Bad usage (an unknown backend, a bad option, a clash of names) is refused before anything is bound.
  const prepared = await backends.prepare(plans);
  const listeners = plans.map((p) => listenerFor(p, log));
  let server: import('../frontend/server.js').ProxyServer | undefined;
  let metrics: { metrics: ProxyMetrics; server: Server; url: string } | undefined;
  try {
    for (const l of listeners) await l.listen();
    // Lazy loading happens here, at the composition's edge, and only here:
    // the listeners bind first because loading the session code, the schemas
    // and a backend (HTTP client, a plugin) takes longer than binding, and
    // QEMU may be waiting to connect. Guests that connect meanwhile wait in
    // their listener with their bytes buffered.
    const { ProxyServer } = await import('../frontend/server.js');
    await backends.create(prepared);
    server = new ProxyServer({ log, limits: new GuestLimits({ ...DEFAULT_GUEST_LIMITS, ...config.vsockLimits, ...config.guestLimits }) });
    if (config.metrics !== undefined) {
      const m = await import('./metrics.js');
      const proxyMetrics = new m.ProxyMetrics(server, log);
      const served = await m.serveMetrics(proxyMetrics, config.metrics);
      metrics = { metrics: proxyMetrics, ...served };
      log.info({ url: served.url }, 'serving metrics');
    }
    const proxy = new RunningProxy(server, backends, callTimeoutMs, log, metrics);
    for (const [i, plan] of plans.entries()) proxy.attach(plan, listeners[i]!);
    const first = plans[0]!;
    log.info({ backend: proxy.backendName, listeners: plans.length, ...describeOptions(first.backendOptions) }, 'aproxy ready');
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
