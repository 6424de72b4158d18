import type { Socket } from 'node:net';
import { setTimeout as wait } from 'node:timers/promises';
import type { Backend, BackendLogger, BackendRequestEvent } from '../backends/contract.js';
import { codeOf, describeError, GuestGoneError, SessionSupersededError, type WaitReason } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/framing.js';
import { type JsonValue, parseStrictJson } from '../protocol/json.js';
import { FrameReader } from './frame-reader.js';
import type { GuestAccount } from './guest-limits.js';
import { runSession, type SessionLink, type SessionOutcome } from './session.js';
import { SessionSlot } from './session-slot.js';
import type { GuestPeer } from './transport.js';

/**
 * What a listener serves with (its profile). Read at each frame (framing) and when each
 * session starts (the rest): a reload reaches links that live as long as their VM, from
 * their next frame and their next session; a session in flight keeps what it started with.
 */
export interface ListenerProfile {
  readonly name: string;
  readonly backend: Backend;
  readonly backendName: string;
  readonly maxFrameBytes: number;
  readonly frameTimeoutMs: number;
  /** Deadline for one backend phase (negotiate, or attest including the resource fetch). */
  readonly phaseTimeoutMs: number;
  /** Deadline for the backend's openSession and close. */
  readonly backendCallTimeoutMs: number;
  /** Called when a session starts using `backend`; the function it returns when the session ends. */
  hold?(): () => void;
}

/** Hooks the server uses for logs and metrics. */
export interface ConnectionEvents {
  onOutcome(o: SessionOutcome): void;
  onBackendRequest(e: BackendRequestEvent): void;
  /** The guest is over its session budget: its link waits `waitMs`, unread, before the next session. */
  onPaced(waitMs: number): void;
}

/** A logger that can make children (pino's shape). */
export interface ConnectionLogger extends BackendLogger {
  child(bindings: Record<string, unknown>): ConnectionLogger;
}

/** Why a link is not being read right now (protocol/reason-codes.ts). */
export type LinkWait = WaitReason;

/**
 * One guest link (a QEMU serial connection, or a vsock connection) for as
 * long as the guest keeps it: with `-serial unix:` that is the VM's life,
 * across every reboot. Never throws.
 *
 * The link is read while a backend phase runs, so that a reboot or a
 * vanished guest is seen at once: a NegotiationRequest always starts a new
 * session, and one still in flight is abandoned (nothing of it is ever
 * written). What a guest can make the link hold is bounded whatever it
 * does: one frame being decoded, one request being served, one answer in
 * flight. The link is not read while
 *
 *  - an answer is not yet taken by the guest (its kernel buffer is full):
 *    the link is kept, never closed for it, because a serial link is the
 *    VM's for life and QEMU does not reconnect; it costs a socket and one
 *    answer, and no CPU;
 *  - the guest is over its session budget (paced, not closed);
 *  - an abandoned session's server exchange is still in flight (at most one
 *    per link, bounded by its phase deadline), so a flood of
 *    NegotiationRequests never has more than one exchange per link going.
 *
 * Only framing faults (byte sync lost) close the link.
 */
export class GuestConnection {
  private readonly reader: FrameReader;
  private sessions = 0;
  private current: SessionSlot | undefined;
  private draining = false;
  /** Aborted when the socket closes: ends every wait of the link. */
  private readonly gone = new AbortController();
  /** The last phase's backend work, until it settles or its deadline passes. */
  private backendWork: Promise<void> | undefined;
  private waitingFor: Exclude<LinkWait, 'answer_untaken'> | undefined;

  private named: GuestPeer;

  constructor(
    readonly id: string,
    peer: GuestPeer,
    private readonly socket: Socket,
    /** The listener's current profile. */
    private readonly profile: () => ListenerProfile,
    private readonly log: ConnectionLogger,
    private readonly events: ConnectionEvents,
    /** The VM's session budget, log bursts and orphaned server work (shared by its links). */
    private readonly account: GuestAccount,
  ) {
    this.named = peer;
    this.reader = new FrameReader(socket, {
      get maxFrameBytes() {
        return profile().maxFrameBytes;
      },
      get frameTimeoutMs() {
        return profile().frameTimeoutMs;
      },
      // Serial links deliver a frame in many small reads; this shows how many and how slowly.
      onFrame: (f) => log.debug({ bytes: f.bytes, reads: f.reads, ms: Math.round(f.ms * 10) / 10 }, 'frame received'),
    });
    socket.once('close', () => {
      this.gone.abort();
      this.current?.end(new GuestGoneError('guest connection closed'));
    });
  }

  /** The peer under its listener's current name: a reload that renames the listener renames its links. */
  get peer(): GuestPeer {
    const name = this.profile().name;
    if (this.named.listener !== name) this.named = { ...this.named, listener: name };
    return this.named;
  }

  /** Why the link is not read now, if it is not. */
  get waiting(): LinkWait | undefined {
    return this.reader.isHeld ? 'answer_untaken' : this.waitingFor;
  }

  /** Shutdown: close now if idle, otherwise right after the session in flight. */
  drain(): void {
    this.draining = true;
    if (this.current === undefined) this.socket.destroy();
  }

  /** Ends the connection now, its session with `reason` (shutdown after the grace period). */
  destroy(reason?: Error): void {
    if (reason !== undefined) this.current?.end(reason);
    this.socket.destroy();
  }

  async run(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.reader.next();
        if (frame === null) break;
        if (!(await this.dispatch(frame))) break;
      }
    } catch (err) {
      // Framing and transport faults: byte sync is lost, nothing sensible can be said to the guest.
      const fields = errFields(err);
      this.account.logs.warn(
        `link:${fields.code}`,
        { conn: this.id, err: fields, buffered: this.reader.buffered },
        `closing guest connection: ${fields.message}`,
      );
    } finally {
      const last = this.current;
      last?.end(new GuestGoneError('guest connection closed'));
      await last?.done;
      this.socket.destroy();
      this.orphan(this.backendWork);
    }
  }

  /** Routes one frame; false when the link must close. */
  private async dispatch(frame: Buffer): Promise<boolean> {
    const running = this.current;
    // Parsed once, here: the session validates the same value.
    const guestFrame = { bytes: frame, json: parseJson(frame) };
    if (running?.awaitingFrame && !isNegotiationRequest(guestFrame.json)) {
      running.deliver(guestFrame);
      return true;
    }
    // Anything else begins a new session: a NegotiationRequest (a reboot, if
    // a session was in flight), or a frame that cannot be one, which gets
    // the failure answer from the session it starts. The old one ends now;
    // the new one starts when the guest's budget and the old one's server
    // exchange allow, and the link is not read until then.
    running?.end(new SessionSupersededError());
    if (!(await this.admit(running))) return false;
    const slot = new SessionSlot();
    this.current = slot;
    const number = ++this.sessions;
    const profile = this.profile();
    const release = profile.hold?.();
    slot.done = runSession(this.link(profile, number), slot, number, guestFrame).then((outcome) => {
      release?.();
      this.report(outcome);
      if (this.current === slot) {
        this.current = undefined;
        if (this.draining) this.socket.destroy();
      }
    });
    return true;
  }

  /** Waits, unread, until a new session may start; false when the guest left meanwhile. */
  private async admit(previous: SessionSlot | undefined): Promise<boolean> {
    for (let waitMs = this.account.budget.take(); waitMs > 0; waitMs = this.account.budget.take()) {
      this.events.onPaced(waitMs);
      this.account.logs.warn(
        'paced',
        { conn: this.id, waitMs },
        'guest is over its session budget: its link is not read until the budget allows (sessions-per-minute, session-burst)',
      );
      if (!(await this.wait('session_budget', delay(waitMs, this.gone.signal)))) return false;
    }
    // The VM's closed links may have left an exchange running (it reconnected): at most one per link, and it waits.
    const busy = [previous?.done, this.backendWork, ...this.account.orphans].filter((p) => p !== undefined);
    if (busy.length > 0 && !(await this.wait('backend_busy', Promise.all(busy)))) return false;
    return !this.gone.signal.aborted;
  }

  /** Leaves the link's unsettled server work to its VM's account, so the VM's next link waits for it. */
  private orphan(work: Promise<void> | undefined): void {
    if (work === undefined) return;
    const orphans = this.account.orphans;
    orphans.add(work);
    void work.then(() => orphans.delete(work));
  }

  /** Holds the link unread until `until` settles or the guest leaves; false if it left. */
  private async wait(why: Exclude<LinkWait, 'answer_untaken'>, until: Promise<unknown>): Promise<boolean> {
    const gone = this.gone.signal;
    if (gone.aborted) return false;
    this.waitingFor = why;
    let onGone: () => void = noop;
    try {
      await Promise.race([
        until.then(noop, noop),
        new Promise<void>((resolve) => {
          onGone = resolve;
          gone.addEventListener('abort', onGone, { once: true });
        }),
      ]);
    } finally {
      gone.removeEventListener('abort', onGone);
      this.waitingFor = undefined;
    }
    return !gone.aborted;
  }

  /** The one place a session's outcome is logged and counted. */
  private report(outcome: SessionOutcome): void {
    // Each key once per line (strict JSON consumers reject duplicates): conn is bound to this.log, the peer to the account's.
    const { connectionId: _conn, transport, listener, cid, ...fields } = outcome;
    const message = `session ${outcome.outcome}${outcome.detail ? `: ${outcome.detail}` : ''}`;
    if (outcome.outcome === 'success') this.log.info({ transport, listener, ...(cid === undefined ? {} : { cid }), ...fields }, message);
    else this.account.logs.warn(`session:${outcome.outcome}:${outcome.reason ?? ''}`, { conn: this.id, ...fields }, message);
    this.events.onOutcome(outcome);
  }

  private link(profile: ListenerProfile, number: number): SessionLink {
    return {
      connectionId: this.id,
      peer: this.peer,
      backend: profile.backend,
      backendName: profile.backendName,
      phaseTimeoutMs: profile.phaseTimeoutMs,
      backendCallTimeoutMs: profile.backendCallTimeoutMs,
      log: this.log.child({ session: number }),
      onBackendRequest: (e) => this.events.onBackendRequest(e),
      send: (payload) => this.write(encodeFrame(payload)),
      backendBusy: (settled) => {
        const work: Promise<void> = settled.then(() => {
          if (this.backendWork === work) this.backendWork = undefined;
        });
        this.backendWork = work;
      },
    };
  }

  /**
   * Resolves true once the kernel took the bytes, false if the guest is
   * gone. Until then the link is not read: a guest that does not take its
   * answers stops being served, and holds one answer, not a queue of them.
   */
  private write(bytes: Buffer): Promise<boolean> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve(false);
    this.reader.hold();
    return new Promise((resolve) => {
      this.socket.write(bytes, (err) => {
        this.reader.release();
        resolve(err == null);
      });
      if (kernelRefused(this.socket)) {
        this.account.logs.warn(
          'answer_untaken',
          { conn: this.id, bytes: bytes.length },
          'guest is not taking its answers (its receive buffer is full): the answer waits and the link is not read until the guest reads',
        );
      }
    });
  }
}

/** True when the last write did not fit into the kernel's buffer at once: the peer is not reading. */
function kernelRefused(socket: Socket): boolean {
  const queued = (socket as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize;
  return typeof queued === 'number' && queued > 0;
}

/** Waits `ms`, or less if `signal` aborts; never rejects. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return wait(ms, undefined, { signal }).catch(noop);
}

const noop = () => undefined;

function parseJson(frame: Buffer): JsonValue | Error {
  try {
    return parseStrictJson(frame);
  } catch (err) {
    return err as Error;
  }
}

/**
 * Whether a frame is a NegotiationRequest (a JSON object with `version`),
 * looked at only while a session waits for an AttestationRequest: a guest
 * that reboots at that moment sends one, and it must start a new session.
 */
function isNegotiationRequest(json: JsonValue | Error): boolean {
  return typeof json === 'object' && json !== null && !(json instanceof Error) && !Array.isArray(json) && Object.hasOwn(json, 'version');
}

/** A fault for the log: our code (INTERNAL for any other), and the system's errno (ECONNRESET, …) beside it. */
function errFields(err: unknown): { code: string; errno?: string; message: string } {
  const system = (err as { code?: unknown } | null)?.code;
  const code = codeOf(err);
  return { code, ...(code === 'INTERNAL' && typeof system === 'string' ? { errno: system } : {}), message: describeError(err) };
}
