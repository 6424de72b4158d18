import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Backend } from '../backends/contract.js';
import { GuestConnection, type ConnectionLogger } from './connection.js';
import type { GuestLimits, Refusal } from './guest-limits.js';
import type { SessionOutcome } from './session.js';
import type { GuestListener, GuestPeer } from './transport.js';

export interface ProxyServerOptions {
  readonly backend: Backend;
  /** The backend's name, for faults that are the backend's. */
  readonly backendName: string;
  /** Deadline for the backend's openSession and close. */
  readonly backendCallTimeoutMs: number;
  readonly log: ConnectionLogger;
  readonly maxFrameBytes: number;
  /** Deadline to finish a frame once it started. */
  readonly frameTimeoutMs: number;
  /** Deadline per backend phase. */
  readonly phaseTimeoutMs: number;
  /** Admission limits for vsock guests; none when absent. */
  readonly limits?: GuestLimits;
}

/** A guest turned away by the limits; emitted as 'refusal'. */
export interface RefusalEvent {
  readonly transport: GuestPeer['transport'];
  readonly reason: Refusal['reason'];
  readonly cid?: number;
}

/**
 * The guest-facing side: takes streams from any number of listeners, one
 * GuestConnection per stream, all served concurrently. Emits 'session'
 * (SessionOutcome) after every guest boot, 'backend-request'
 * (BackendRequestEvent) after every server exchange, 'refusal'
 * (RefusalEvent) for a guest over its limits, and 'connection' /
 * 'disconnect' with the connection id.
 */
export class ProxyServer extends EventEmitter {
  private readonly guestListeners: GuestListener[] = [];
  private readonly connections = new Map<string, GuestConnection>();
  private readonly running = new Set<Promise<void>>();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    super();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Open guest connections per transport, for metrics. */
  connectionsByTransport(): Record<GuestPeer['transport'], number> {
    const counts = { unix: 0, vsock: 0 };
    for (const c of this.connections.values()) counts[c.peer.transport]++;
    return counts;
  }

  /** Serves the guests `listener` accepts, including those that waited for this call. */
  serve(listener: GuestListener): void {
    this.guestListeners.push(listener);
    listener.onConnection((stream, peer) => this.accept(stream, peer));
  }

  /**
   * Stops accepting, lets sessions in flight finish for up to `graceMs`, then
   * closes every connection and what the listeners created. Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    await Promise.all(this.guestListeners.map((l) => l.close()));
    // Idle connections (between sessions) go at once; busy ones close after their session or the grace period.
    for (const c of this.connections.values()) c.drain();
    if (this.running.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.running]),
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const c of this.connections.values()) c.destroy();
    await Promise.allSettled([...this.running]);
  }

  private refused(r: Refusal, peer: GuestPeer): void {
    if (r.firstOfBurst) {
      const what = { per_cid: 'connections per CID', total: 'vsock connections in total', session_rate: 'sessions per minute for this CID' }[r.reason];
      this.options.log.warn(
        { transport: peer.transport, cid: r.cid, reason: r.reason },
        `refusing a guest over its limit of ${what}; further refusals in this burst are only counted (aproxy_guest_refusals_total)`,
      );
    }
    this.emit('refusal', { transport: peer.transport, reason: r.reason, ...(r.cid === undefined ? {} : { cid: r.cid }) } satisfies RefusalEvent);
  }

  private accept(socket: Socket, peer: GuestPeer): void {
    // A guest that came and went while it waited to be handed over has nothing to serve.
    if (this.closing || socket.destroyed) {
      socket.destroy();
      return;
    }
    const limits = this.options.limits;
    const refusal = limits?.admit(peer);
    if (refusal) {
      socket.destroy();
      this.refused(refusal, peer);
      return;
    }
    const id = `c${this.nextId++}`;
    const log = this.options.log.child({ conn: id });
    const conn = new GuestConnection(
      id,
      peer,
      socket,
      this.options.backend,
      this.options.backendName,
      log,
      this.options,
      {
        onOutcome: (o: SessionOutcome) => this.emit('session', o),
        onBackendRequest: (e) => this.emit('backend-request', e),
        admitSession: () => {
          const r = limits?.startSession(peer);
          if (r) this.refused(r, peer);
          return r === undefined;
        },
      },
    );
    this.connections.set(id, conn);
    log.debug({}, 'guest connected');
    this.emit('connection', id);
    const run = conn.run().finally(() => {
      limits?.release(peer);
      limits?.forgetIdle();
      this.connections.delete(id);
      this.running.delete(run);
      log.debug({}, 'guest disconnected');
      this.emit('disconnect', id);
    });
    this.running.add(run);
  }
}
