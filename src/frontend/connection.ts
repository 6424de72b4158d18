import type { Socket } from 'node:net';
import type { Backend, BackendLogger, BackendRequestEvent } from '../backends/contract.js';
import { describeError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/framing.js';
import { FrameReader } from './frame-reader.js';
import { GuestGoneError, codeOf, runSession, type SessionLink, type SessionOutcome } from './session.js';
import type { GuestPeer } from './transport.js';

export interface ConnectionOptions {
  readonly maxFrameBytes: number;
  readonly frameTimeoutMs: number;
  /** Deadline for one backend phase (negotiate, or attest including the resource fetch). */
  readonly phaseTimeoutMs: number;
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

/**
 * One guest link (a QEMU serial connection, or a vsock connection): any
 * number of sessions in sequence, one per guest boot. Never throws; every
 * fault ends in a log line and, where the protocol has one, a defined answer.
 */
export class GuestConnection {
  private readonly reader: FrameReader;
  private readonly gone = new AbortController();
  private sessions = 0;
  /** True while a session is between its first frame and its last answer. */
  inSession = false;
  private draining = false;

  constructor(
    readonly id: string,
    readonly peer: GuestPeer,
    private readonly socket: Socket,
    private readonly backend: Backend,
    private readonly log: ConnectionLogger,
    private readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.reader = new FrameReader(socket, {
      ...options,
      // Serial links deliver a frame in many small reads; this shows how many and how slowly.
      onFrame: (f) => log.debug({ bytes: f.bytes, reads: f.reads, ms: Math.round(f.ms * 10) / 10 }, 'frame received'),
    });
    socket.once('close', () => this.gone.abort(new GuestGoneError('guest connection closed')));
  }

  /** Shutdown: close now if idle, otherwise right after the session in flight. */
  drain(): void {
    this.draining = true;
    if (!this.inSession) this.socket.destroy();
  }

  /** Ends the connection now (shutdown after the grace period). */
  destroy(): void {
    this.socket.destroy();
  }

  async run(): Promise<void> {
    try {
      for (;;) {
        this.inSession = false;
        const frame = await this.reader.next();
        if (frame === null) break;
        if (!this.events.admitSession()) break;
        this.inSession = true;
        const number = ++this.sessions;
        const { outcome, keepLink } = await runSession(this.link(number), number, frame);
        this.report(outcome);
        if (!keepLink || this.draining) break;
      }
    } catch (err) {
      // Framing and transport faults: nothing sensible can be said to the guest.
      this.log.warn({ err: errFields(err), buffered: this.reader.buffered }, `closing guest connection: ${describeError(err)}`);
    } finally {
      this.inSession = false;
      this.socket.destroy();
    }
  }

  /** The one place a session's outcome is logged and counted. */
  private report(outcome: SessionOutcome): void {
    const level = outcome.outcome === 'success' ? 'info' : 'warn';
    // conn is already bound to this logger.
    const { connectionId: _conn, ...fields } = outcome;
    this.log[level](fields, `session ${outcome.outcome}${outcome.detail ? `: ${outcome.detail}` : ''}`);
    this.events.onOutcome(outcome);
  }

  private link(number: number): SessionLink {
    return {
      connectionId: this.id,
      peer: this.peer,
      gone: this.gone.signal,
      next: () => this.reader.next(),
      send: (payload) => {
        if (this.socket.destroyed || !this.socket.writable) return false;
        this.socket.write(encodeFrame(payload));
        return true;
      },
      backend: this.backend,
      phaseTimeoutMs: this.options.phaseTimeoutMs,
      log: this.log.child({ session: number }),
      onBackendRequest: (e) => this.events.onBackendRequest(e),
    };
  }
}

/** A fault for the log: our code, else the system's (ECONNRESET, …), else INTERNAL. */
function errFields(err: unknown): { code: string; message: string } {
  const own = codeOf(err);
  const system = (err as { code?: unknown } | null)?.code;
  return { code: own !== 'INTERNAL' ? own : typeof system === 'string' ? system : own, message: describeError(err) };
}
