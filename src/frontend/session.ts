import { createHash } from 'node:crypto';
import type { Backend, BackendLogger, BackendRequestEvent, BackendSession, PhaseContext } from '../backends/contract.js';
import {
  AproxyError,
  BackendTimeoutError,
  ChallengeMismatchError,
  OutOfOrderError,
  UnsupportedVersionError,
  describeError,
  isAproxyError,
} from '../protocol/errors.js';
import { parseAttestationRequest, parseNegotiationRequest } from '../protocol/message-parsers.js';
import {
  ATTESTATION_FAILURE,
  PROTOCOL_VERSION,
  serializeAttestationResponse,
  serializeNegotiationResponse,
  type AttestationRequest,
  type AttestationResponse,
  type NegotiationRequest,
} from '../protocol/messages.js';
import { SNP_REPORT_BYTES, parseSnpReport } from '../protocol/snp-report.js';
import type { GuestPeer } from './transport.js';

/** What happened to one guest boot; one log line and one event per session. */
export interface SessionOutcome {
  readonly connectionId: string;
  readonly session: number;
  readonly transport: GuestPeer['transport'];
  readonly listener: string;
  /** vsock only: the peer's context id as the host kernel reports it (not attested). */
  readonly cid?: number;
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

/** What a session needs from the guest link it runs on. */
export interface SessionLink {
  readonly connectionId: string;
  readonly peer: GuestPeer;
  /** Aborted when the guest's stream closes. */
  readonly gone: AbortSignal;
  /** The next whole frame, or null when the guest closed the stream between frames. */
  next(): Promise<Buffer | null>;
  /** Writes one frame; false when the guest is gone. */
  send(payload: string): boolean;
  readonly backend: Backend;
  readonly phaseTimeoutMs: number;
  readonly log: BackendLogger;
  onBackendRequest(e: BackendRequestEvent): void;
}

/** The guest's stream went away mid-session. */
export class GuestGoneError extends Error {
  readonly code = 'GUEST_GONE';
}

/**
 * How a session ended before success: `answered` means the guest got the
 * protocol's failure response and the link carries on; otherwise the link
 * closes (the negotiation phase has no failure message).
 */
class SessionEnd extends Error {
  constructor(
    readonly why: unknown,
    readonly answered: boolean,
    readonly detail?: string,
  ) {
    super(detail ?? describeError(why));
  }
}

type Facts = { -readonly [K in 'tee' | 'reportVersion' | 'measurement' | 'negotiateMs' | 'attestMs' | 'token']?: SessionOutcome[K] };

/**
 * One guest boot, as the protocol reads: negotiate → answer → attest →
 * answer. Never throws: returns the outcome and whether the link may carry
 * another session.
 */
export async function runSession(
  link: SessionLink,
  number: number,
  firstFrame: Buffer,
): Promise<{ outcome: SessionOutcome; keepLink: boolean }> {
  const started = performance.now();
  const requests: string[] = [];
  const facts: Facts = {};
  const observe = (e: BackendRequestEvent) => {
    requests.push(`${e.endpoint} ${e.status ?? e.error ?? '-'} ${round(e.durationMs)}ms`);
    link.onBackendRequest(e);
  };
  const outcome = (o: Pick<SessionOutcome, 'outcome' | 'reason' | 'detail'>): SessionOutcome => ({
    connectionId: link.connectionId,
    session: number,
    transport: link.peer.transport,
    listener: link.peer.listener,
    ...(link.peer.cid === undefined ? {} : { cid: link.peer.cid }),
    ...o,
    ...facts,
    totalMs: round(performance.now() - started),
    backend: requests,
  });

  try {
    await converse(link, number, firstFrame, facts, observe);
    return { outcome: outcome({ outcome: 'success' }), keepLink: true };
  } catch (err) {
    const end = err instanceof SessionEnd ? err : new SessionEnd(err, false);
    return {
      outcome: outcome({ outcome: end.answered ? 'failure' : 'aborted', reason: codeOf(end.why), detail: end.message }),
      keepLink: end.answered,
    };
  }
}

async function converse(
  link: SessionLink,
  number: number,
  firstFrame: Buffer,
  facts: Facts,
  observe: PhaseContext['observe'],
): Promise<void> {
  const negotiation = parseNegotiation(firstFrame);
  facts.tee = negotiation.tee;

  let session: BackendSession;
  try {
    session = await link.backend.openSession({ connectionId: link.connectionId, sessionNumber: number, log: link.log });
  } catch (err) {
    throw new SessionEnd(err, false, `backend could not open a session: ${describeError(err)}`);
  }
  try {
    // Negotiation: its only failure answer is a closed link.
    const t0 = performance.now();
    const negotiated = await phase(link, 'negotiate', observe, (ctx) => session.negotiate(negotiation, ctx)).finally(() => {
      facts.negotiateMs = since(t0);
    });
    if (!link.send(serializeNegotiationResponse(negotiated))) {
      throw new SessionEnd(new GuestGoneError(), false, 'guest left before the negotiation answer');
    }

    const frame = await link.next();
    if (frame === null) throw new SessionEnd(new GuestGoneError(), false, 'guest closed the connection after negotiation');

    // Attestation: every failure gets the protocol's failure answer.
    const t1 = performance.now();
    let request: AttestationRequest | undefined;
    let response: AttestationResponse;
    let failure: unknown;
    try {
      request = parseAttestationRequest(frame);
      if (request.tee !== negotiation.tee) {
        throw new OutOfOrderError(`attestation request is for tee "${request.tee}" but the session negotiated "${negotiation.tee}"`);
      }
      if (!bytesEqual(request.challenge, negotiated.challenge)) throw new ChallengeMismatchError();
      const req = request;
      response = await phase(link, 'attest', observe, (ctx) => session.attest(req, ctx));
      if (!response.success) failure = new AproxyError('ATTESTATION_REJECTED', 'backend answered success:false');
    } catch (err) {
      failure = err;
      response = ATTESTATION_FAILURE;
    }
    facts.attestMs = since(t1);
    Object.assign(facts, describeReport(request));
    if (link.gone.aborted) throw new SessionEnd(new GuestGoneError(), false, 'guest left during attestation');
    link.send(serializeAttestationResponse(response));
    if (failure !== undefined) throw new SessionEnd(failure, true);
    if (response.token !== undefined) facts.token = fingerprint(response.token.value);
  } finally {
    try {
      await session.close();
    } catch (err) {
      link.log.error({ err: { code: codeOf(err), message: describeError(err) } }, `backend session close failed: ${describeError(err)}`);
    }
  }
}

/** Runs one backend phase under a deadline and the guest's lifetime. */
async function phase<T>(link: SessionLink, name: string, observe: PhaseContext['observe'], run: (ctx: PhaseContext) => Promise<T>): Promise<T> {
  // A plain controller per phase, linked to the connection's and cleared
  // after: AbortSignal.any would keep every phase's signal reachable from
  // the long-lived connection signal.
  const abort = new AbortController();
  const gone = link.gone;
  const onGone = () => abort.abort(gone.reason);
  if (gone.aborted) onGone();
  else gone.addEventListener('abort', onGone, { once: true });
  const timer = setTimeout(() => abort.abort(new BackendTimeoutError(`${name} phase`, link.phaseTimeoutMs)), link.phaseTimeoutMs);
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

function describeReport(req: AttestationRequest | undefined): Facts {
  const report = req?.evidence.value.report;
  if (report === undefined || report.length !== SNP_REPORT_BYTES) return {};
  const r = parseSnpReport(report);
  return { reportVersion: r.version, measurement: Buffer.from(r.measurement).toString('hex') };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Our code for a failure, else INTERNAL. */
export function codeOf(err: unknown): string {
  if (isAproxyError(err) || err instanceof GuestGoneError) return err.code;
  return 'INTERNAL';
}

/** First 12 hex digits of SHA-256: enough to correlate log lines, useless to replay. */
export function fingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 12);
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const since = (t: number) => round(performance.now() - t);
