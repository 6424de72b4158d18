import type { Server } from 'node:http';
import type { Backend, RawBackendOptions } from '../backends/contract.js';
import { withDeadline } from '../backends/deadline.js';
import { prepareBackend, type AnyBackendDefinition, type PreparedBackend } from '../backends/registry.js';
import type { ListenerProfile } from '../frontend/connection.js';
import { GuestLimits, type GuestLimitOptions } from '../frontend/guest-limits.js';
import { InheritedUnixListener, inheritedSocketKind } from '../frontend/inherited-listener.js';
import type { ProxyServer } from '../frontend/server.js';
import type { GuestListener } from '../frontend/transport.js';
import { UnixListener } from '../frontend/unix-listener.js';
import { VsockListener } from '../frontend/vsock-listener.js';
import { ConfigError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { DEFAULT_BACKEND_CALL_TIMEOUT_MS, DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_PHASE_TIMEOUT_MS, DEFAULT_GUEST_LIMITS } from './config.js';
import type { Logger } from './log.js';
import type { ProxyMetrics } from './metrics.js';

/** Settings a listener may override; the rest of ProxyConfig is proxy-wide. */
export interface ListenerSettings {
  /** Built-in backend name (`kbs`, `kbs-test`), a module path, or an already loaded definition. */
  readonly protocol?: string | AnyBackendDefinition;
  /**
   * The backend's own options, checked by its `parseOptions`. For the KBS
   * backends: `url`, `resource` (a template: {host_data}, {measurement},
   * {report_id}, {chip_id}, {cid}, {listener}), `caCert` (a PEM file path),
   * `requestTimeoutMs`, `authRetryBudgetMs`. A listener's are merged over
   * the proxy-wide ones.
   */
  readonly backendOptions?: RawBackendOptions;
  readonly maxFrameBytes?: number;
  readonly frameTimeoutMs?: number;
  readonly phaseTimeoutMs?: number;
}

/** One place guests connect to: a Unix socket path, a vsock port, or an inherited socket. */
export interface ListenerConfig extends ListenerSettings {
  /** For logs, metrics and the {listener} template field; default: the address. Letters, digits, `.`, `_`, `-`. */
  readonly name?: string;
  readonly unix?: string;
  readonly vsock?: number;
  /** A listening socket passed by a service manager (Unix or vsock). */
  readonly fd?: number;
  /** Replace a stale socket at `unix`. */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
}

/** Everything one running proxy needs; the CLI builds it from flags and the config file. */
export interface ProxyConfig extends ListenerSettings {
  readonly protocol: string | AnyBackendDefinition;
  /** Unix socket path(s) to bind, for serial guests (`-serial unix:PATH`), with the proxy-wide settings. */
  readonly unix?: string | readonly string[];
  /** vsock port(s) to bind on VMADDR_CID_ANY (SVSM uses 1995). */
  readonly vsock?: number | readonly number[];
  /** Listening sockets handed over by a service manager (systemd: 3, 4, …), Unix or vsock, told apart by asking the kernel. */
  readonly listenFds?: readonly number[];
  /** More listeners, each with optional overrides. */
  readonly listeners?: readonly ListenerConfig[];
  /** For `unix` given here: replace a stale socket. */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
  /** Deadline for the backend's create(), openSession() and close(). */
  readonly backendCallTimeoutMs?: number;
  /** Limits for guests (vsock connection caps; every guest's session budget); each missing field takes its default. */
  readonly guestLimits?: Partial<GuestLimitOptions>;
  /** @deprecated the earlier name of `guestLimits`. */
  readonly vsockLimits?: Partial<GuestLimitOptions>;
  /** `ADDR:PORT` to serve Prometheus metrics at /metrics; off when absent. Not reloadable. */
  readonly metrics?: string;
  readonly log: Logger;
}

export interface ReloadResult {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

export interface RunningProxy {
  readonly server: ProxyServer;
  /** The backend of the first listener (all of them, when there is one configuration). */
  readonly backend: Backend;
  readonly backendName: string;
  /** The metrics endpoint, when `metrics` was given. */
  readonly metricsUrl?: string;
  /** The listeners' names, in order. */
  listenerNames(): string[];
  /**
   * Applies a new configuration: adds listeners, closes removed ones (their
   * sessions in flight finish, their socket files go), and gives changed
   * settings to new sessions. All or nothing: a configuration that fails to
   * check, bind or start is refused and the running one stays. Given a
   * function, calls it first (e.g. to re-read a file): its failure is a
   * refused reload too.
   */
  reload(config: ProxyConfig | (() => Promise<ProxyConfig>)): Promise<ReloadResult>;
  /** Graceful stop: in-flight sessions get `graceMs`, then everything closes. */
  close(graceMs?: number): Promise<void>;
}

/** A listener as planned from the configuration, before anything is bound. */
interface PlannedListener {
  /** What identifies it across reloads: its address. */
  readonly key: string;
  readonly name: string;
  readonly config: ListenerConfig;
  readonly backendKey: string;
  readonly protocol: string | AnyBackendDefinition;
  readonly backendOptions: RawBackendOptions;
  readonly settings: { maxFrameBytes: number; frameTimeoutMs: number; phaseTimeoutMs: number };
}

/**
 * A backend shared by every listener (and session) with the same protocol
 * and options, so one KBS gets one HTTP pool. Listeners and sessions hold
 * it; when the last lets go (a reload moved every listener away and their
 * sessions ended) it closes and leaves the set.
 */
class SharedBackend {
  private refs = 0;
  private closed: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly backend: Backend,
    private readonly callTimeoutMs: number,
    private readonly log: Logger,
    private readonly onUnused: () => void,
  ) {}

  retain(): () => void {
    this.refs++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.refs === 0) {
        this.onUnused();
        void this.close();
      }
    };
  }

  close(): Promise<void> {
    this.closed ??= withDeadline(this.name, 'close', this.callTimeoutMs, async () => this.backend.close()).catch((err: unknown) =>
      this.log.error({ backend: this.name, err: { message: (err as Error).message } }, `backend close failed: ${(err as Error).message}`),
    );
    return this.closed;
  }
}

/** What a bound listener is serving with now. */
interface Live {
  readonly plan: PlannedListener;
  readonly listener: GuestListener;
  profile: ListenerProfile;
  /** The listener's own hold on its backend. */
  releaseBackend: () => void;
}

/** Binds the guest listeners, loads the backends, and returns the running proxy. */
export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const log = config.log;
  const callTimeoutMs = config.backendCallTimeoutMs ?? DEFAULT_BACKEND_CALL_TIMEOUT_MS;
  const plans = planListeners(config);
  // Bad usage (an unknown backend, a bad option, a clash of names) is refused before anything is bound.
  const prepared = await prepareBackends(plans, new Map(), callTimeoutMs);
  const listeners = plans.map((p) => listenerFor(p, log));
  const backends = new Map<string, SharedBackend>();
  let server: ProxyServer | undefined;
  let metricsServer: Server | undefined;
  let metrics: ProxyMetrics | undefined;
  let metricsUrl: string | undefined;
  try {
    for (const l of listeners) await l.listen();
    // Lazy loading happens here, at the composition's edge, and only here:
    // the listeners bind first because loading the session code, the schemas
    // and a backend (HTTP client, a plugin) takes longer than binding, and
    // QEMU may be waiting to connect. Guests that connect meanwhile wait in
    // their listener with their bytes buffered.
    const { ProxyServer } = await import('../frontend/server.js');
    await createBackends(prepared, backends, backends, callTimeoutMs, log);
    const proxyServer = new ProxyServer({ log, limits: new GuestLimits({ ...DEFAULT_GUEST_LIMITS, ...config.vsockLimits, ...config.guestLimits }) });
    server = proxyServer;
    const live = new Map<string, Live>();
    plans.forEach((plan, i) => live.set(plan.key, attach(proxyServer, plan, listeners[i] as GuestListener, backends, callTimeoutMs)));
    if (config.metrics !== undefined) {
      const m = await import('./metrics.js');
      metrics = new m.ProxyMetrics(proxyServer, log);
      const served = await m.serveMetrics(metrics, config.metrics);
      metricsServer = served.server;
      metricsUrl = served.url;
      log.info({ url: metricsUrl }, 'serving metrics');
    }
    const first = live.values().next().value as Live;
    log.info({ backend: first.profile.backendName, listeners: plans.length, ...describeOptions(first.plan.backendOptions) }, 'aproxy ready');
    // Load what the first guest will need (HTTP client) now that the sockets are up.
    setImmediate(() => {
      for (const b of backends.values()) b.backend.warm?.();
    });
    let closing: Promise<void> | undefined;
    let reloading: Promise<unknown> = Promise.resolve();
    return {
      server: proxyServer,
      backend: first.profile.backend,
      backendName: first.profile.backendName,
      metricsUrl,
      listenerNames: () => [...live.values()].map((l) => l.plan.name),
      reload(next) {
        // One reload at a time, in order.
        const run = reloading.then(async () =>
          reload(typeof next === 'function' ? await next() : next, { server: proxyServer, live, backends, callTimeoutMs, log }),
        );
        reloading = run.catch(() => undefined);
        return run.then(
          (r) => {
            metrics?.reloaded('applied');
            return r;
          },
          (err: unknown) => {
            metrics?.reloaded('refused');
            throw err;
          },
        );
      },
      close(graceMs = 0) {
        closing ??= proxyServer.close(graceMs).finally(async () => {
          metricsServer?.closeAllConnections();
          metricsServer?.close();
          for (const l of live.values()) l.releaseBackend();
          await Promise.all([...backends.values()].map((b) => b.close()));
        });
        return closing;
      },
    };
  } catch (err) {
    metricsServer?.close();
    if (server) await server.close();
    else await Promise.all(listeners.map((l) => l.close()));
    await Promise.all([...backends.values()].map((b) => b.close()));
    throw err;
  }
}

/** The listeners a configuration asks for, with their effective settings; checks names and addresses. */
function planListeners(config: ProxyConfig): PlannedListener[] {
  const list = (v: string | number | readonly (string | number)[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const shared = { force: config.force, socketMode: config.socketMode, socketGid: config.socketGid };
  const configs: ListenerConfig[] = [
    ...(config.listenFds ?? []).map((fd) => ({ fd })),
    ...list(config.unix).map((unix) => ({ unix: String(unix), ...shared })),
    ...list(config.vsock).map((vsock) => ({ vsock: Number(vsock) })),
    ...(config.listeners ?? []),
  ];
  if (configs.length === 0) throw new ConfigError('no listener: give --unix PATH, --vsock [PORT], a `listeners` list, or sockets from systemd');
  const keys = new Set<string>();
  const names = new Set<string>();
  return configs.map((c) => {
    const addresses = [c.unix, c.vsock, c.fd].filter((a) => a !== undefined);
    if (addresses.length !== 1) throw new ConfigError(`a listener needs exactly one of unix, vsock or fd (got ${JSON.stringify(c)})`);
    const key = c.unix !== undefined ? `unix:${c.unix}` : c.vsock !== undefined ? `vsock:${c.vsock}` : `fd:${c.fd}`;
    const name = c.name ?? (c.unix !== undefined ? c.unix : key);
    if (c.name !== undefined && !/^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$/.test(c.name)) {
      throw new ConfigError(`listener name ${JSON.stringify(c.name)}: use letters, digits, ".", "_" or "-" (it goes into metrics and resource paths)`);
    }
    if (keys.has(key)) throw new ConfigError(`two listeners on ${key}`);
    if (names.has(name)) throw new ConfigError(`two listeners named ${JSON.stringify(name)}`);
    keys.add(key);
    names.add(name);
    const protocol = c.protocol ?? config.protocol;
    const backendOptions = { ...config.backendOptions, ...c.backendOptions };
    return {
      key,
      name,
      config: c,
      protocol,
      backendOptions,
      backendKey: `${typeof protocol === 'string' ? protocol : `definition:${protocol.name}`} ${stableJson(backendOptions)}`,
      settings: {
        maxFrameBytes: c.maxFrameBytes ?? config.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        frameTimeoutMs: c.frameTimeoutMs ?? config.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS,
        phaseTimeoutMs: c.phaseTimeoutMs ?? config.phaseTimeoutMs ?? DEFAULT_PHASE_TIMEOUT_MS,
      },
    };
  });
}

/** Finds and checks each backend the plans need that `have` does not. */
async function prepareBackends(plans: PlannedListener[], have: ReadonlyMap<string, SharedBackend>, loadTimeoutMs: number): Promise<Map<string, PreparedBackend>> {
  const prepared = new Map<string, PreparedBackend>();
  for (const p of plans) {
    if (have.has(p.backendKey) || prepared.has(p.backendKey)) continue;
    try {
      prepared.set(p.backendKey, await prepareBackend(p.protocol, p.backendOptions, process.cwd(), loadTimeoutMs));
    } catch (err) {
      if (err instanceof ConfigError && plans.length > 1) throw new ConfigError(`listener ${p.name}: ${err.message}`);
      throw err;
    }
  }
  return prepared;
}

/** Creates the prepared backends into `into`; each leaves `home` when its last user lets go. */
async function createBackends(
  prepared: Map<string, PreparedBackend>,
  into: Map<string, SharedBackend>,
  home: Map<string, SharedBackend>,
  callTimeoutMs: number,
  log: Logger,
): Promise<void> {
  for (const [key, p] of prepared) {
    const definition = await p.load();
    const backend = await withDeadline(definition.name, 'create', callTimeoutMs, async () =>
      definition.create(p.options, { log: log.child({ backend: definition.name }) }),
    );
    into.set(key, new SharedBackend(definition.name, backend, callTimeoutMs, log, () => home.delete(key)));
  }
}

function profileFor(plan: PlannedListener, shared: SharedBackend, callTimeoutMs: number): ListenerProfile {
  return {
    name: plan.name,
    backend: shared.backend,
    backendName: shared.name,
    ...plan.settings,
    backendCallTimeoutMs: callTimeoutMs,
    hold: () => shared.retain(),
  };
}

function attach(server: ProxyServer, plan: PlannedListener, listener: GuestListener, backends: Map<string, SharedBackend>, callTimeoutMs: number): Live {
  const shared = backends.get(plan.backendKey) as SharedBackend;
  const live: Live = { plan, listener, profile: profileFor(plan, shared, callTimeoutMs), releaseBackend: shared.retain() };
  server.serve(listener, () => live.profile);
  return live;
}

async function reload(
  config: ProxyConfig,
  state: { server: ProxyServer; live: Map<string, Live>; backends: Map<string, SharedBackend>; callTimeoutMs: number; log: Logger },
): Promise<ReloadResult> {
  const { server, live, backends, callTimeoutMs, log } = state;
  // Everything that can fail happens before anything running is touched.
  const plans = planListeners(config);
  const prepared = await prepareBackends(plans, backends, callTimeoutMs);
  const added = plans.filter((p) => !live.has(p.key));
  const fresh = added.map((p) => listenerFor(p, log));
  const created = new Map<string, SharedBackend>();
  try {
    for (const l of fresh) await l.listen();
    await createBackends(prepared, created, backends, callTimeoutMs, log);
  } catch (err) {
    await Promise.all(fresh.map((l) => l.close()));
    await Promise.all([...created.values()].map((b) => b.close()));
    throw err;
  }
  for (const [k, b] of created) backends.set(k, b);

  // Now apply: it cannot fail.
  const result: ReloadResult = { added: added.map((p) => p.name), removed: [], changed: [] };
  const wanted = new Set(plans.map((p) => p.key));
  for (const [key, l] of live) {
    if (wanted.has(key)) continue;
    live.delete(key);
    result.removed.push(l.plan.name);
    // Its socket file is gone when the reload is reported; its sessions in flight finish after.
    await l.listener.close();
    void server.retire(l.listener).then(() => l.releaseBackend());
  }
  for (const plan of plans) {
    const l = live.get(plan.key);
    if (l === undefined || stableJson(l.plan) === stableJson(plan)) continue;
    // Same address, new settings: new sessions get them; sessions in flight keep theirs.
    const shared = backends.get(plan.backendKey) as SharedBackend;
    const releaseOld = l.releaseBackend;
    live.set(plan.key, Object.assign(l, { plan, profile: profileFor(plan, shared, callTimeoutMs), releaseBackend: shared.retain() }));
    releaseOld();
    result.changed.push(plan.name);
  }
  added.forEach((plan, i) => live.set(plan.key, attach(server, plan, fresh[i] as GuestListener, backends, callTimeoutMs)));
  return result;
}

function listenerFor(plan: PlannedListener, log: Logger): GuestListener {
  const onListening = (fields: Record<string, unknown>, message: string) => log.info({ listener: plan.name, ...fields }, message);
  const onWarning = (fields: Record<string, unknown>, message: string) => log.warn({ listener: plan.name, ...fields }, message);
  const c = plan.config;
  if (c.fd !== undefined) {
    return inheritedSocketKind(c.fd) === 'vsock'
      ? new VsockListener({ fd: c.fd, name: plan.name, onListening, onWarning })
      : new InheritedUnixListener({ fd: c.fd, name: plan.name, onListening });
  }
  if (c.vsock !== undefined) return new VsockListener({ port: c.vsock, name: plan.name, onListening, onWarning });
  return new UnixListener({ path: c.unix as string, name: plan.name, force: c.force, mode: c.socketMode, gid: c.socketGid, onListening });
}

/** JSON with sorted keys, so equal settings compare equal. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Set)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : typeof v === 'function'
        ? `function:${(v as { name?: string }).name ?? ''}`
        : v,
  );
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
