import type { Server } from 'node:http';
import type { Backend } from '../backends/contract.js';
import type { PreparedBackend } from '../backends/registry.js';
import type { ListenerProfile } from '../frontend/connection.js';
import type { ProxyServer } from '../frontend/server.js';
import type { GuestListener } from '../frontend/transport.js';
import { UnixListener } from '../frontend/unix-listener.js';
import type { BackendPool } from './backend-pool.js';
import { normalizeConfig } from './config/normalize.js';
import type { ProxyConfig } from './config/types.js';
import { listenerFor } from './guest-listeners.js';
import { diffPlans, type PlannedListener, planListeners, stableJson } from './listener-plan.js';
import type { Logger } from './log.js';
import type { ProxyMetrics } from './metrics.js';
import { preflight, refuseProblems } from './preflight.js';

/** What a reload did, by listener name. */
export interface ReloadResult {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

/** A bound listener and what it serves with now. */
export interface LiveListener {
  readonly plan: PlannedListener;
  readonly listener: GuestListener;
  /** What new sessions on it get: swapped by a reload. */
  readonly profile: ListenerProfile;
  /** The listener's own hold on its backend. */
  readonly release: () => void;
}

/**
 * A proxy that serves: its listeners by address, the backends they share,
 * and its state. `startProxy` (proxy.ts) makes one; `reload` and `close`
 * change it, one at a time.
 */
export class RunningProxy {
  /** `running` until `close` is called; `closed` once everything is released. */
  state: 'running' | 'closing' | 'closed' = 'running';
  /** Bound listeners by address (`unix:PATH`, `vsock:PORT`, `fd:N`), in configuration order. */
  readonly listeners = new Map<string, LiveListener>();
  private reloading: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(
    readonly server: ProxyServer,
    readonly backends: BackendPool,
    private readonly callTimeoutMs: number,
    private readonly log: Logger,
    private readonly metrics?: { readonly metrics: ProxyMetrics; readonly server: Server; readonly url: string },
  ) {}

  /** The metrics endpoint, when `metrics` was given. */
  get metricsUrl(): string | undefined {
    return this.metrics?.url;
  }

  /** The backend of the first listener (all of them, when there is one configuration). */
  get backend(): Backend {
    return this.first().profile.backend;
  }

  get backendName(): string {
    return this.first().profile.backendName;
  }

  /** The listeners' names, in order. */
  listenerNames(): string[] {
    return [...this.listeners.values()].map((l) => l.plan.name);
  }

  /** Starts serving a bound listener with its plan's profile. */
  attach(plan: PlannedListener, listener: GuestListener): void {
    const live = this.live(plan, listener);
    this.listeners.set(plan.key, live);
    // A connection accepted as the listener is being removed still gets the profile it had.
    this.server.serve(listener, () => (this.listeners.get(plan.key) ?? live).profile);
  }

  /**
   * Applies a new configuration: adds listeners, closes removed ones (their
   * sessions in flight finish, their socket files go), and gives changed
   * profiles to new sessions. All or nothing: a configuration that fails to
   * check, bind or start is refused and the running one stays. Given a
   * function, calls it first (e.g. to re-read a file): its failure is a
   * refused reload too. Reloads run one at a time, in order.
   */
  reload(next: ProxyConfig | (() => Promise<ProxyConfig>)): Promise<ReloadResult> {
    const run = this.reloading.then(async () => {
      this.refuseIfStopping();
      return this.apply(typeof next === 'function' ? await next() : next);
    });
    this.reloading = run.catch(() => undefined);
    return run.then(
      (r) => {
        this.metrics?.metrics.reloaded('applied');
        return r;
      },
      (err: unknown) => {
        this.metrics?.metrics.reloaded('refused');
        throw err;
      },
    );
  }

  /** Graceful stop: in-flight sessions get `graceMs`, then everything closes. */
  close(graceMs = 0): Promise<void> {
    if (this.state === 'running') this.state = 'closing';
    this.closing ??= this.server.close(graceMs).finally(async () => {
      // A reload under way when the stop came ends first (it sees the stop and adds nothing), so nothing it opened outlives the proxy.
      await this.reloading;
      this.metrics?.server.closeAllConnections();
      this.metrics?.server.close();
      for (const l of this.listeners.values()) l.release();
      await this.backends.close();
      this.state = 'closed';
    });
    return this.closing;
  }

  private async apply(input: ProxyConfig): Promise<ReloadResult> {
    // Everything that can fail happens before anything running is touched:
    // the same checks as at start, for what this proxy does not hold yet.
    const config = normalizeConfig(input);
    // Backends the new plans reuse stay alive until the diff is applied, even
    // if their last session ends meanwhile (one a removed listener left running).
    const pins = planListeners(config).map((p) => this.backends.tryHold(p.backendKey));
    try {
      const checked = await preflight(config, this.backends, { kind: 'reload', bound: new Set(this.listeners.keys()) });
      refuseProblems(checked);
      return await this.applyPlans(checked.plans, checked.prepared);
    } finally {
      for (const pin of pins) pin?.();
    }
  }

  private async applyPlans(plans: PlannedListener[], prepared: Map<string, PreparedBackend>): Promise<ReloadResult> {
    const diff = diffPlans(
      [...this.listeners.values()].map((l) => l.plan),
      plans,
    );
    const fresh = diff.added.map((p) => listenerFor(p, this.log));
    try {
      for (const l of fresh) await l.listen();
      await this.backends.create(prepared);
      // The stop may have come while this reload waited: it must not add to a proxy that is closing.
      this.refuseIfStopping();
      // A socket file that stays gets the permissions its listener now has.
      for (const plan of diff.changed) {
        const l = this.listeners.get(plan.key) as LiveListener;
        const [was, now] = [l.plan.address, plan.address];
        if (
          l.listener instanceof UnixListener &&
          was.unix !== undefined &&
          now.unix !== undefined &&
          stableJson(was.socket) !== stableJson(now.socket)
        )
          await l.listener.setPermissions(now.socket.mode, now.socket.gid);
      }
    } catch (err) {
      await Promise.all(fresh.map((l) => l.close()));
      throw err;
    }
    // Now apply: it cannot fail.
    for (const plan of diff.removed) {
      const l = this.listeners.get(plan.key) as LiveListener;
      this.listeners.delete(plan.key);
      // Its socket file is gone when the reload is reported; its sessions in flight finish after.
      await l.listener.close();
      void this.server.retire(l.listener).then(() => l.release());
    }
    for (const plan of diff.changed) {
      // Same address, a new profile: new sessions get them; sessions in flight keep theirs.
      const l = this.listeners.get(plan.key) as LiveListener;
      this.listeners.set(plan.key, this.live(plan, l.listener));
      l.release();
    }
    for (const [i, plan] of diff.added.entries()) this.attach(plan, fresh[i] as GuestListener);
    // Keep configuration order.
    const ordered = plans.map((p) => [p.key, this.listeners.get(p.key) as LiveListener] as const);
    this.listeners.clear();
    for (const [k, l] of ordered) this.listeners.set(k, l);
    return { added: diff.added.map((p) => p.name), removed: diff.removed.map((p) => p.name), changed: diff.changed.map((p) => p.name) };
  }

  private refuseIfStopping(): void {
    if (this.state !== 'running') throw new Error('the proxy is stopping: the reload is not applied');
  }

  private live(plan: PlannedListener, listener: GuestListener): LiveListener {
    const held = this.backends.hold(plan.backendKey);
    const profile: ListenerProfile = {
      name: plan.name,
      backend: held.backend,
      backendName: held.name,
      maxFrameBytes: plan.maxFrameBytes,
      frameTimeoutMs: plan.frameTimeoutMs,
      phaseTimeoutMs: plan.phaseTimeoutMs,
      backendCallTimeoutMs: this.callTimeoutMs,
      hold: () => this.backends.hold(plan.backendKey).release,
    };
    return { plan, listener, profile, release: held.release };
  }

  private first(): LiveListener {
    return this.listeners.values().next().value as LiveListener;
  }
}
