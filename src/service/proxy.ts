import type { Server } from 'node:http';
import type { Backend, RawBackendOptions } from '../backends/contract.js';
import { prepareBackend, type AnyBackendDefinition } from '../backends/registry.js';
import { GuestLimits, type GuestLimitOptions } from '../frontend/guest-limits.js';
import { InheritedUnixListener } from '../frontend/inherited-listener.js';
import type { ProxyServer } from '../frontend/server.js';
import { withDeadline } from '../frontend/session.js';
import type { GuestListener } from '../frontend/transport.js';
import { UnixListener } from '../frontend/unix-listener.js';
import { VsockListener } from '../frontend/vsock-listener.js';
import { socketFamily } from '../frontend/vsock-native.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { DEFAULT_BACKEND_CALL_TIMEOUT_MS, DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_PHASE_TIMEOUT_MS, DEFAULT_VSOCK_LIMITS } from './config.js';
import type { Logger } from './log.js';

/** Everything one running proxy needs; the CLI builds it from flags and the config file. */
export interface ProxyConfig {
  /** Built-in backend name (`kbs`, `kbs-test`), a module path, or an already loaded definition. */
  readonly protocol: string | AnyBackendDefinition;
  /**
   * The backend's own options, checked by its `parseOptions`. For the KBS
   * backends: `url`, `resource`, `caCert` (a PEM file path), `requestTimeoutMs`.
   */
  readonly backendOptions?: RawBackendOptions;
  /** Unix socket path to bind, for serial guests (`-serial unix:PATH`). */
  readonly unix?: string;
  /** vsock port to bind on VMADDR_CID_ANY (SVSM uses 1995). `unix` and `vsock` may be given together. */
  readonly vsock?: number;
  /** Limits for vsock guests; each missing field takes its default. */
  readonly vsockLimits?: Partial<GuestLimitOptions>;
  /** Replace a stale socket at `unix`. */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
  /**
   * Listening sockets handed over by a service manager (systemd: 3, 4, …),
   * Unix or vsock, told apart by asking the kernel; they replace binding
   * `unix` and `vsock`.
   */
  readonly listenFds?: readonly number[];
  readonly maxFrameBytes?: number;
  readonly frameTimeoutMs?: number;
  readonly phaseTimeoutMs?: number;
  /** Deadline for the backend's create(), openSession() and close(). */
  readonly backendCallTimeoutMs?: number;
  /** `ADDR:PORT` to serve Prometheus metrics at /metrics; off when absent. */
  readonly metrics?: string;
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

/** Binds the guest listeners, loads the backend, and returns the running proxy. */
export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const log = config.log;
  const listeners = listenersFor(config);
  const raw = config.backendOptions ?? {};
  // Bad usage (an unknown backend, a bad option) is refused before anything is bound.
  const prepared = await prepareBackend(config.protocol, raw);
  let server: ProxyServer | undefined;
  let backend: Backend | undefined;
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  try {
    for (const l of listeners) await l.listen();
    // Lazy loading happens here, at the composition's edge, and only here:
    // the listeners bind first because loading the session code, the schemas
    // and a backend (HTTP client, a plugin) takes longer than binding, and
    // QEMU may be waiting to connect. Guests that connect meanwhile wait in
    // their listener with their bytes buffered.
    const [{ ProxyServer }, definition] = await Promise.all([import('../frontend/server.js'), prepared.load()]);
    const options = prepared.options;
    const callTimeoutMs = config.backendCallTimeoutMs ?? DEFAULT_BACKEND_CALL_TIMEOUT_MS;
    backend = await withDeadline(definition.name, 'create', callTimeoutMs, async () => definition.create(options, { log: log.child({ backend: definition.name }) }));
    server = new ProxyServer({
      backend,
      backendName: definition.name,
      backendCallTimeoutMs: callTimeoutMs,
      log,
      maxFrameBytes: config.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      frameTimeoutMs: config.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS,
      phaseTimeoutMs: config.phaseTimeoutMs ?? DEFAULT_PHASE_TIMEOUT_MS,
      limits: new GuestLimits({ ...DEFAULT_VSOCK_LIMITS, ...config.vsockLimits }),
    });
    for (const l of listeners) server.serve(l);
    if (config.metrics !== undefined) {
      const { ProxyMetrics, serveMetrics } = await import('./metrics.js');
      const served = await serveMetrics(new ProxyMetrics(server), config.metrics);
      metricsServer = served.server;
      metricsUrl = served.url;
      log.info({ url: metricsUrl }, 'serving metrics');
    }
    const running = backend;
    const proxy = server;
    log.info({ backend: definition.name, ...describeOptions(raw) }, 'aproxy ready');
    // Load what the first guest will need (HTTP client) now that the socket is up.
    setImmediate(() => running.warm?.());
    let closing: Promise<void> | undefined;
    return {
      server: proxy,
      backend: running,
      backendName: definition.name,
      metricsUrl,
      close(graceMs = 0) {
        closing ??= proxy.close(graceMs).finally(async () => {
          metricsServer?.closeAllConnections();
          metricsServer?.close();
          await withDeadline(definition.name, 'close', callTimeoutMs, async () => running.close()).catch((err: unknown) =>
            log.error({ err: { message: (err as Error).message } }, `backend close failed: ${(err as Error).message}`),
          );
        });
        return closing;
      },
    };
  } catch (err) {
    metricsServer?.close();
    if (server) await server.close();
    else await Promise.all(listeners.map((l) => l.close()));
    await backend?.close();
    throw err;
  }
}

function listenersFor(config: ProxyConfig): GuestListener[] {
  const onListening = (fields: Record<string, unknown>, message: string) => config.log.info(fields, message);
  const onWarning = (fields: Record<string, unknown>, message: string) => config.log.warn(fields, message);
  if (config.listenFds !== undefined && config.listenFds.length > 0) {
    return config.listenFds.map((fd) =>
      socketFamily(fd) === 'vsock' ? new VsockListener({ fd, onListening, onWarning }) : new InheritedUnixListener({ fd, onListening }),
    );
  }
  const listeners: GuestListener[] = [];
  if (config.unix !== undefined && config.unix !== '') {
    listeners.push(new UnixListener({ path: config.unix, force: config.force, mode: config.socketMode, gid: config.socketGid, onListening }));
  }
  if (config.vsock !== undefined) listeners.push(new VsockListener({ port: config.vsock, onListening, onWarning }));
  if (listeners.length === 0) throw new TypeError('startProxy: give `unix` (a socket path), `vsock` (a port) or `listenFds`');
  return listeners;
}

/** What the ready line says about the backend's options: the URL without credentials, nothing else. */
function describeOptions(raw: RawBackendOptions): Record<string, string> {
  return typeof raw.url === 'string' ? { url: redactUrl(raw.url) } : {};
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
