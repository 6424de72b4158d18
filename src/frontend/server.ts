import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ShutdownError } from '../protocol/errors.js';
import { type ConnectionLogger, GuestConnection, type LinkWait, type ListenerProfile } from './connection.js';
import type { GuestLimits, Refusal } from './guest-limits.js';
import type { SessionOutcome } from './session.js';
import type { GuestListener, GuestPeer } from './transport.js';

export interface ProxyServerOptions {
  readonly log: ConnectionLogger;
  /** Admission limits for vsock guests and every guest's session budget. */
  readonly limits: GuestLimits;
}

/** A guest over its session budget, waiting unread; emitted as 'paced'. */
export interface PacedEvent {
  readonly transport: GuestPeer['transport'];
  readonly listener: string;
  readonly waitMs: number;
}

/** A guest turned away by the limits; emitted as 'refusal'. */
export interface RefusalEvent {
  readonly transport: GuestPeer['transport'];
  readonly listener: string;
  readonly reason: Refusal['reason'];
  readonly cid?: number;
}

interface Served {
  readonly listener: GuestListener;
  readonly profile: () => ListenerProfile;
}

/**
 * The guest-facing side: takes streams from any number of listeners, one
 * GuestConnection per stream, all served concurrently, each with its
 * listener's profile. Emits 'session' (SessionOutcome) after every guest
 * boot, 'backend-request' (BackendRequestEvent) after every server
 * exchange, 'refusal' (RefusalEvent) for a guest over its limits,
 * 'paced' (PacedEvent) for a guest over its session budget, and
 * 'connection' / 'disconnect' with the connection id.
 */
export class ProxyServer extends EventEmitter {
  private readonly served = new Set<Served>();
  private readonly connections = new Map<string, { conn: GuestConnection; served: Served; done: Promise<void> }>();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    super();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Open guest connections per transport and listener, for metrics. */
  connectionCounts(): Array<{ transport: GuestPeer['transport']; listener: string; count: number }> {
    const counts = new Map<string, { transport: GuestPeer['transport']; listener: string; count: number }>();
    for (const s of this.served) counts.set(s.profile().name, { transport: s.listener.transport, listener: s.profile().name, count: 0 });
    for (const { conn } of this.connections.values()) {
      const c = counts.get(conn.peer.listener);
      if (c) c.count++;
    }
    return [...counts.values()];
  }

  /** Links not being read right now, per transport, listener and why (answer_untaken, session_budget, backend_busy). */
  waitingCounts(): Array<{ transport: GuestPeer['transport']; listener: string; reason: LinkWait; count: number }> {
    const counts = new Map<string, { transport: GuestPeer['transport']; listener: string; reason: LinkWait; count: number }>();
    for (const { conn } of this.connections.values()) {
      const reason = conn.waiting;
      if (reason === undefined) continue;
      const key = `${conn.peer.listener}\0${reason}`;
      const c = counts.get(key) ?? { transport: conn.peer.transport, listener: conn.peer.listener, reason, count: 0 };
      c.count++;
      counts.set(key, c);
    }
    return [...counts.values()];
  }

  /** Serves the guests `listener` accepts, including those that waited for this call, with the listener's current profile. */
  serve(listener: GuestListener, profile: () => ListenerProfile): void {
    const served = { listener, profile };
    this.served.add(served);
    listener.onConnection((stream, peer) => this.accept(stream, { ...peer, listener: profile().name }, served));
  }

  /**
   * Stops serving `listener` (a reload removed it): it stops accepting and
   * removes its socket file; its idle links close now, busy ones after their
   * session. Resolves when they are all gone.
   */
  async retire(listener: GuestListener): Promise<void> {
    const served = [...this.served].find((s) => s.listener === listener);
    if (served === undefined) return;
    this.served.delete(served);
    await listener.close();
    const mine = [...this.connections.values()].filter((c) => c.served === served);
    for (const c of mine) c.conn.drain();
    await Promise.allSettled(mine.map((c) => c.done));
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
    await Promise.all([...this.served].map((s) => s.listener.close()));
    // Idle connections (between sessions) go at once; busy ones close after their session or the grace period.
    for (const { conn } of this.connections.values()) conn.drain();
    const running = () => [...this.connections.values()].map((c) => c.done);
    if (this.connections.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(running()),
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const cut = new ShutdownError(graceMs);
    for (const { conn } of this.connections.values()) conn.destroy(cut);
    await Promise.allSettled(running());
  }

  private refused(r: Refusal, peer: GuestPeer): void {
    if (r.firstOfBurst) {
      const why = {
        per_cid: 'refusing a guest over its limit of connections per CID',
        total: 'refusing a guest over the limit of vsock connections in total',
        no_cid: 'refusing a vsock connection whose CID the kernel could not give',
        open_files: 'refusing a guest connection: guests hold all the connections the open-file limit allows beside the reserve',
      }[r.reason];
      this.options.log.warn(
        { transport: peer.transport, listener: peer.listener, cid: r.cid, reason: r.reason },
        `${why}; further refusals in this burst are only counted (aproxy_guest_refusals_total)`,
      );
    }
    const event: RefusalEvent = {
      transport: peer.transport,
      listener: peer.listener,
      reason: r.reason,
      ...(r.cid === undefined ? {} : { cid: r.cid }),
    };
    this.emit('refusal', event);
  }

  private accept(socket: Socket, peer: GuestPeer, served: Served): void {
    // A guest that came and went while it waited to be handed over has nothing to serve.
    if (this.closing || socket.destroyed || !this.served.has(served)) {
      socket.destroy();
      return;
    }
    const limits = this.options.limits;
    const refusal = limits.admit(peer);
    if (refusal) {
      socket.destroy();
      this.refused(refusal, peer);
      return;
    }
    const id = `c${this.nextId++}`;
    const log = this.options.log.child({ conn: id });
    // Warnings a guest can cause at will go through its account's bursts, on the proxy's logger with the guest named
    // (under its listener's name at the time: a reload may rename it).
    const proxyLog = this.options.log;
    const cid = peer.cid === undefined ? {} : { cid: peer.cid };
    const account = limits.account(peer, served, {
      warn: (fields, message) => proxyLog.warn({ transport: peer.transport, listener: served.profile().name, ...cid, ...fields }, message),
    });
    const conn: GuestConnection = new GuestConnection(
      id,
      peer,
      socket,
      served.profile,
      log,
      {
        onOutcome: (o: SessionOutcome) => this.emit('session', o),
        onBackendRequest: (e) => this.emit('backend-request', e),
        onPaced: (waitMs) => {
          const event: PacedEvent = { transport: peer.transport, listener: conn.peer.listener, waitMs };
          this.emit('paced', event);
        },
      },
      account,
    );
    log.debug({ transport: peer.transport, listener: peer.listener }, 'guest connected');
    this.emit('connection', id);
    const done = conn.run().finally(() => {
      limits.release(peer);
      limits.leave(peer, served, account);
      limits.forgetIdle();
      this.connections.delete(id);
      log.debug({}, 'guest disconnected');
      this.emit('disconnect', id);
    });
    this.connections.set(id, { conn, served, done });
  }
}
