import type { Server } from 'node:http';
import { resolveBackend } from './backends/registry.js';
import type { Backend, BackendDefinition } from './backends/types.js';
import { ProxyServer } from './frontend/server.js';
import type { Logger } from './log.js';
import { DEFAULT_RESOURCE_PATH } from './protocol/constants.js';

export interface ProxyConfig {
  /** Built-in backend name, a module path, or an already loaded definition. */
  readonly protocol: string | BackendDefinition;
  readonly url: string;
  /** Socket path to bind; ignored when `listenFd` is given. */
  readonly unix: string;
  readonly force?: boolean;
  readonly resource?: string;
  readonly maxFrameBytes?: number;
  readonly frameTimeoutMs?: number;
  readonly phaseTimeoutMs?: number;
  /** Per HTTP exchange with the server. Default 15 s. */
  readonly requestTimeoutMs?: number;
  readonly socketMode?: number;
  readonly socketGid?: number;
  readonly caCert?: string;
  /** `ADDR:PORT` to serve Prometheus metrics at /metrics; off when absent. */
  readonly metrics?: string;
  /** A listening socket handed over by a service manager (systemd: fd 3); replaces binding `unix`. */
  readonly listenFd?: number;
  readonly log: Logger;
}

export interface RunningProxy {
  readonly server: ProxyServer;
  readonly backend: Backend;
  readonly backendName: string;
  /** The metrics endpoint, when `metrics` was given. */
  readonly metricsUrl?: string;
  /** Graceful stop: in-flight sessions get `graceMs`, then everything closes. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** Loads the backend, binds the guest socket, and returns the running proxy. */
export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const log = config.log;
  // The socket listens first: loading a backend (HTTP client, schemas, a
  // plugin) takes longer than binding, and QEMU may be waiting to connect.
  // Guests that connect meanwhile wait for the backend with their bytes buffered.
  let backendReady!: (b: Backend) => void;
  let backendFailed!: (err: unknown) => void;
  const backendPromise = new Promise<Backend>((resolve, reject) => {
    backendReady = resolve;
    backendFailed = reject;
  });
  backendPromise.catch(() => undefined);
  const server = new ProxyServer({
    backend: backendPromise,
    log,
    maxFrameBytes: config.maxFrameBytes,
    frameTimeoutMs: config.frameTimeoutMs,
    phaseTimeoutMs: config.phaseTimeoutMs,
  });
  let definition: BackendDefinition;
  let backend: Backend | undefined;
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  try {
    if (config.listenFd !== undefined) await server.listenFd(config.listenFd);
    else await server.listen(config.unix, { force: config.force, mode: config.socketMode, gid: config.socketGid });
    definition = typeof config.protocol === 'string' ? await resolveBackend(config.protocol) : config.protocol;
    backend = await definition.create({
      url: config.url,
      resource: config.resource ?? DEFAULT_RESOURCE_PATH,
      requestTimeoutMs: config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      caCert: config.caCert,
      log: log.child({ backend: definition.name }),
    });
    backendReady(backend);
    if (config.metrics !== undefined) {
      // After the guest socket: guests should not wait for the metrics library to load.
      const { ProxyMetrics, serveMetrics } = await import('./metrics.js');
      const served = await serveMetrics(new ProxyMetrics(server), config.metrics);
      metricsServer = served.server;
      metricsUrl = served.url;
      log.info({ url: metricsUrl }, 'serving metrics');
    }
  } catch (err) {
    backendFailed(err);
    metricsServer?.close();
    await server.close();
    await backend?.close();
    throw err;
  }
  const running = backend;
  log.info({ backend: definition.name, url: redactUrl(config.url) }, 'aproxy ready');
  // Load what the first guest will need (schemas, HTTP client) now that the socket is up.
  setImmediate(() => {
    void server.warm();
    running.warm?.();
  });
  let closing: Promise<void> | undefined;
  return {
    server,
    backend: running,
    backendName: definition.name,
    metricsUrl,
    close(graceMs = 0) {
      closing ??= server.close(graceMs).finally(async () => {
        metricsServer?.closeAllConnections();
        metricsServer?.close();
        await running.close();
      });
      return closing;
    },
  };
}

/** URLs may carry credentials; logs get them without. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
