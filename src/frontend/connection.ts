import type { Socket } from 'node:net';
import type { Backend, BackendLogger, BackendRequestEvent } from '../backends/contract.js';
import { describeError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/framing.js';
import { parseStrictJson, type JsonValue } from '../protocol/json.js';
import { FrameReader } from './frame-reader.js';
import {
  GuestGoneError,
  SessionSupersededError,
  codeOf,
  runSession,
  type GuestFrame,
  type SessionControl,
  type SessionLink,
  type SessionOutcome,
} from './session.js';
import type { GuestPeer } from './transport.js';

/**
 * A listener's settings. Read when a connection opens (framing) and when
 * each session starts (the rest), so a reload changes new sessions only.
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
  /** False when the guest is over its session budget: the link closes without a session. */
  admitSession(): boolean;
}

/** A logger that can make children (pino's shape). */
export interface ConnectionLogger extends BackendLogger {
  child(bindings: Record<string, unknown>): ConnectionLogger;
}

/** One session in flight, as the link sees it. */
class SessionSlot implements SessionControl {
  private readonly controller = new AbortController();
  private waiter: { resolve: (f: GuestFrame) => void; reject: (e: unknown) => void } | undefined;
  done: Promise<void> = Promise.resolve();

  get ended(): AbortSignal {
    return this.controller.signal;
  }

  /** True while the session waits for the guest's AttestationRequest. */
  get awaitingFrame(): boolean {
    return this.waiter !== undefined;
  }

  nextFrame(): Promise<GuestFrame> {
    if (this.ended.aborted) return Promise.reject(this.ended.reason);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  deliver(frame: GuestFrame): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(frame);
  }

  end(reason: Error): void {
    if (this.ended.aborted) return;
    this.controller.abort(reason);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(reason);
  }
}

/**
 * One guest link (a QEMU serial connection, or a vsock connection) for as
 * long as the guest keeps it: with `-serial unix:` that is the VM's life,
 * across every reboot. The link is read all the time, also while a backend
 * phase runs, so that a reboot or a vanished guest is seen at once. A
 * NegotiationRequest always starts a new session; one still in flight is
 * abandoned and nothing of it is ever written. Only framing faults (byte
 * sync lost) close the link. Never throws.
 */
export class GuestConnection {
  private readonly reader: FrameReader;
  private sessions = 0;
  private current: SessionSlot | undefined;
  private draining = false;

  constructor(
    readonly id: string,
    readonly peer: GuestPeer,
    private readonly socket: Socket,
    /** The listener's current settings. */
    private readonly profile: () => ListenerProfile,
    private readonly log: ConnectionLogger,
    private readonly events: ConnectionEvents,
  ) {
    const { maxFrameBytes, frameTimeoutMs } = profile();
    this.reader = new FrameReader(socket, {
      maxFrameBytes,
      frameTimeoutMs,
      // Serial links deliver a frame in many small reads; this shows how many and how slowly.
      onFrame: (f) => log.debug({ bytes: f.bytes, reads: f.reads, ms: Math.round(f.ms * 10) / 10 }, 'frame received'),
    });
    socket.once('close', () => this.current?.end(new GuestGoneError('guest connection closed')));
  }

  /** True while a session is between its first frame and its last answer. */
  get inSession(): boolean {
    return this.current !== undefined;
  }

  /** Shutdown: close now if idle, otherwise right after the session in flight. */
  drain(): void {
    this.draining = true;
    if (this.current === undefined) this.socket.destroy();
  }

  /** Ends the connection now (shutdown after the grace period). */
  destroy(): void {
    this.socket.destroy();
  }

  async run(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.reader.next();
        if (frame === null) break;
        if (!this.dispatch(frame)) break;
      }
    } catch (err) {
      // Framing and transport faults: byte sync is lost, nothing sensible can be said to the guest.
      this.log.warn({ err: errFields(err), buffered: this.reader.buffered }, `closing guest connection: ${describeError(err)}`);
    } finally {
      const last = this.current;
      last?.end(new GuestGoneError('guest connection closed'));
      await last?.done;
      this.socket.destroy();
    }
  }

  /** Routes one frame; false when the link must close. */
  private dispatch(frame: Buffer): boolean {
    const running = this.current;
    if (running?.awaitingFrame) {
      // Parsed once here; the session validates the same value.
      const json = parseJson(frame);
      if (!isNegotiationRequest(json)) {
        running.deliver({ bytes: frame, json });
        return true;
      }
    }
    // Anything else begins a new session: a NegotiationRequest (a reboot, if
    // a session was in flight), or a frame that cannot be one, which gets
    // the failure answer from the session it starts.
    running?.end(new SessionSupersededError());
    if (!this.events.admitSession()) return false;
    const slot = new SessionSlot();
    this.current = slot;
    const number = ++this.sessions;
    const profile = this.profile();
    const release = profile.hold?.();
    slot.done = runSession(this.link(profile, number), slot, number, frame).then((outcome) => {
      release?.();
      this.report(outcome);
      if (this.current === slot) {
        this.current = undefined;
        if (this.draining) this.socket.destroy();
      }
    });
    return true;
  }

  /** The one place a session's outcome is logged and counted. */
  private report(outcome: SessionOutcome): void {
    const level = outcome.outcome === 'success' ? 'info' : 'warn';
    // conn is already bound to this logger.
    const { connectionId: _conn, ...fields } = outcome;
    this.log[level](fields, `session ${outcome.outcome}${outcome.detail ? `: ${outcome.detail}` : ''}`);
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
    };
  }

  /** Resolves true once the kernel took the bytes, false if the guest is gone. */
  private write(bytes: Buffer): Promise<boolean> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve(false);
    return new Promise((resolve) => this.socket.write(bytes, (err) => resolve(err == null)));
  }
}

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

/** A fault for the log: our code, else the system's (ECONNRESET, …), else INTERNAL. */
function errFields(err: unknown): { code: string; message: string } {
  const own = codeOf(err);
  const system = (err as { code?: unknown } | null)?.code;
  return { code: own !== 'INTERNAL' ? own : typeof system === 'string' ? system : own, message: describeError(err) };
}
