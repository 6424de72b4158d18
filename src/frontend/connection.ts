import type { Socket } from 'node:net';
import {
  ATTESTATION_FAILURE,
  AproxyError,
  BackendTimeoutError,
  ChallengeMismatchError,
  OutOfOrderError,
  PROTOCOL_VERSION,
  SNP_REPORT_BYTES,
  UnsupportedVersionError,
  describeError,
  encodeFrame,
  isAproxyError,
  parseAttestationRequest,
  parseNegotiationRequest,
  parseSnpReport,
  serializeAttestationResponse,
  serializeNegotiationResponse,
  type AttestationRequest,
  type AttestationResponse,
  type NegotiationRequest,
  type NegotiationResponse,
} from '../protocol/wire.js';
import type { Backend, BackendRequestEvent, BackendSession, PhaseContext } from '../backends/types.js';
import { fingerprint } from '../fingerprint.js';
import type { Logger } from '../log.js';
import { FrameReader } from './frame-reader.js';

export interface ConnectionOptions {
  readonly maxFrameBytes: number;
  readonly frameTimeoutMs: number;
  /** Deadline for one backend phase (negotiate, or attest including the resource fetch). */
  readonly phaseTimeoutMs: number;
}

/** What happened to one guest boot; one log line and one event per session. */
export interface SessionOutcome {
  readonly connectionId: string;
  readonly session: number;
  readonly outcome: 'success' | 'failure' | 'aborted';
  /** Error code of the cause when not a success, e.g. ATTESTATION_REJECTED, GUEST_GONE. */
  readonly reason?: string;
  readonly detail?: string;
  readonly tee?: string;
  readonly reportVersion?: number;
  readonly measurement?: string;
  readonly negotiateMs?: number;
  readonly attestMs?: number;
  readonly totalMs: number;
  /** Server exchanges in order, e.g. `POST /kbs/v0/auth 200 3.1ms`. */
  readonly backend?: string[];
  /** SHA-256 fingerprint of the attestation token handed to the guest, never the token. */
  readonly token?: string;
}

/** Hooks the server uses for metrics. */
export interface ConnectionEvents {
  onOutcome(o: SessionOutcome): void;
  onBackendRequest(e: BackendRequestEvent): void;
}

/** Raised inside the loop when the guest's socket went away mid-session. */
class GuestGoneError extends Error {
  readonly code = 'GUEST_GONE';
}

/**
 * Serves one guest connection (one QEMU process): any number of sessions in
 * sequence, each NegotiationRequest → backend → reply, AttestationRequest →
 * backend → reply. Never throws; every fault ends in a log line and, where
 * the protocol has one, a defined answer to the guest.
 */
export class GuestConnection {
  private readonly reader: FrameReader;
  private readonly gone = new AbortController();
  private sessions = 0;

  constructor(
    readonly id: string,
    private readonly socket: Socket,
    private readonly backend: Backend,
    private readonly log: Logger,
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

  /** True while a session is between its first frame and its last answer. */
  inSession = false;
  private draining = false;

  /** Shutdown: close now if idle, otherwise right after the session in flight. */
  drain(): void {
    this.draining = true;
    if (!this.inSession) this.socket.destroy();
  }

  async run(): Promise<void> {
    try {
      for (;;) {
        this.inSession = false;
        const frame = await this.reader.next();
        if (frame === null) break;
        this.inSession = true;
        const keepGoing = await this.serveSession(frame);
        if (!keepGoing || this.draining) break;
      }
    } catch (err) {
      // Framing and transport faults: nothing sensible can be said to the guest.
      this.log.warn({ err: errFields(err), buffered: this.reader.buffered }, `closing guest connection: ${describeError(err)}`);
    } finally {
      this.inSession = false;
      this.socket.destroy();
    }
  }

  /** Ends the connection now (shutdown after the grace period). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Returns false when the connection must close. */
  private async serveSession(firstFrame: Buffer): Promise<boolean> {
    const number = ++this.sessions;
    const log = this.log.child({ session: number });
    const started = performance.now();
    const base = { connectionId: this.id, session: number };
    const requests: string[] = [];
    const finish = (o: Omit<SessionOutcome, 'connectionId' | 'session' | 'totalMs'>) => {
      const outcome: SessionOutcome = { ...base, ...o, totalMs: round(performance.now() - started), backend: requests };
      const level = o.outcome === 'success' ? 'info' : 'warn';
      // conn and session are already bound to this logger.
      const { connectionId: _conn, session: _session, ...fields } = outcome;
      log[level](fields, `session ${o.outcome}${o.detail ? `: ${o.detail}` : ''}`);
      this.events.onOutcome(outcome);
    };
    const observe = (e: BackendRequestEvent) => {
      requests.push(`${e.endpoint} ${e.status ?? e.error ?? '-'} ${round(e.durationMs)}ms`);
      this.events.onBackendRequest(e);
    };

    let negReq: NegotiationRequest;
    try {
      negReq = parseNegotiation(firstFrame);
    } catch (err) {
      finish({ outcome: 'aborted', reason: codeOf(err), detail: describeError(err) });
      return false;
    }

    let session: BackendSession;
    try {
      session = await this.backend.openSession({ connectionId: this.id, sessionNumber: number, log });
    } catch (err) {
      finish({ outcome: 'aborted', reason: codeOf(err), detail: `backend could not open a session: ${describeError(err)}`, tee: negReq.tee });
      return false;
    }

    try {
      const t0 = performance.now();
      let negResp: NegotiationResponse;
      try {
        negResp = await this.phase('negotiate', observe, (ctx) => session.negotiate(negReq, ctx));
      } catch (err) {
        finish({ outcome: 'aborted', reason: codeOf(err), detail: describeError(err), tee: negReq.tee, negotiateMs: since(t0) });
        return false;
      }
      const negotiateMs = since(t0);
      if (!this.send(serializeNegotiationResponse(negResp))) {
        finish({ outcome: 'aborted', reason: 'GUEST_GONE', detail: 'guest left before the negotiation answer', tee: negReq.tee, negotiateMs });
        return false;
      }

      let frame: Buffer | null;
      try {
        frame = await this.reader.next();
      } catch (err) {
        finish({ outcome: 'aborted', reason: codeOf(err), detail: describeError(err), tee: negReq.tee, negotiateMs });
        return false;
      }
      if (frame === null) {
        finish({ outcome: 'aborted', reason: 'GUEST_GONE', detail: 'guest closed the connection after negotiation', tee: negReq.tee, negotiateMs });
        return false;
      }

      const t1 = performance.now();
      let attReq: AttestationRequest | undefined;
      let response: AttestationResponse;
      let failure: unknown;
      try {
        attReq = parseAttestationRequest(frame);
        if (attReq.tee !== negReq.tee) {
          throw new OutOfOrderError(`attestation request is for tee "${attReq.tee}" but the session negotiated "${negReq.tee}"`);
        }
        if (!bytesEqual(attReq.challenge, negResp.challenge)) throw new ChallengeMismatchError();
        const req = attReq;
        response = await this.phase('attest', observe, (ctx) => session.attest(req, ctx));
        if (!response.success) failure = new AproxyError('ATTESTATION_REJECTED', 'backend answered success:false');
      } catch (err) {
        failure = err;
        response = ATTESTATION_FAILURE;
      }
      const attestMs = since(t1);
      const report = describeReport(attReq);
      if (this.gone.signal.aborted) {
        finish({ outcome: 'aborted', reason: 'GUEST_GONE', detail: 'guest left during attestation', tee: negReq.tee, ...report, negotiateMs, attestMs });
        return false;
      }
      this.send(serializeAttestationResponse(response));
      if (failure === undefined) {
        const token = response.token === undefined ? undefined : fingerprint(response.token.value);
        finish({ outcome: 'success', tee: negReq.tee, ...report, negotiateMs, attestMs, token });
      } else {
        finish({ outcome: 'failure', reason: codeOf(failure), detail: describeError(failure), tee: negReq.tee, ...report, negotiateMs, attestMs });
      }
      return true;
    } finally {
      try {
        await session.close();
      } catch (err) {
        log.error({ err: errFields(err) }, `backend session close failed: ${describeError(err)}`);
      }
    }
  }

  /** Runs one backend phase under a deadline and the guest's lifetime. */
  private async phase<T>(name: string, observe: PhaseContext['observe'], run: (ctx: PhaseContext) => Promise<T>): Promise<T> {
    // A plain controller per phase, linked to the connection's and cleared
    // after: AbortSignal.any would keep every phase's signal reachable from
    // the long-lived connection signal.
    const abort = new AbortController();
    const gone = this.gone.signal;
    const onGone = () => abort.abort(gone.reason);
    if (gone.aborted) onGone();
    else gone.addEventListener('abort', onGone, { once: true });
    const timer = setTimeout(() => abort.abort(new BackendTimeoutError(`${name} phase`, this.options.phaseTimeoutMs)), this.options.phaseTimeoutMs);
    const signal = abort.signal;
    try {
      // Race so that a backend ignoring the signal still cannot hold the guest.
      return await Promise.race([
        run({ signal, observe }),
        new Promise<never>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      gone.removeEventListener('abort', onGone);
    }
  }

  private send(payload: string): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    this.socket.write(encodeFrame(payload));
    return true;
  }
}

function parseNegotiation(frame: Buffer): NegotiationRequest {
  let req: NegotiationRequest;
  try {
    req = parseNegotiationRequest(frame);
  } catch (err) {
    if (looksLikeAttestation(frame)) throw new OutOfOrderError('attestation request received before any negotiation request');
    throw err;
  }
  if (req.version.some((v, i) => v !== PROTOCOL_VERSION[i])) throw new UnsupportedVersionError(req.version);
  return req;
}

function looksLikeAttestation(frame: Buffer): boolean {
  try {
    parseAttestationRequest(frame);
    return true;
  } catch {
    return false;
  }
}

function describeReport(req: AttestationRequest | undefined): { reportVersion?: number; measurement?: string } {
  const report = req?.evidence.value.report;
  if (report === undefined || report.length !== SNP_REPORT_BYTES) return {};
  const r = parseSnpReport(report);
  return { reportVersion: r.version, measurement: Buffer.from(r.measurement).toString('hex') };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function codeOf(err: unknown): string {
  if (isAproxyError(err) || err instanceof GuestGoneError) return err.code;
  return 'INTERNAL';
}

/** A fault for the log: our code, else the system's (ECONNRESET, …), else INTERNAL. */
function errFields(err: unknown): { code: string; message: string } {
  const own = codeOf(err);
  const system = (err as { code?: unknown } | null)?.code;
  return { code: own !== 'INTERNAL' ? own : typeof system === 'string' ? system : own, message: describeError(err) };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const since = (t: number) => round(performance.now() - t);
