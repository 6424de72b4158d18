import { createHash } from 'node:crypto';
import type { Backend, BackendLogger, BackendRequestEvent, BackendSession, PhaseContext } from '../backends/contract.js';
import { withDeadline } from '../backends/deadline.js';
import {
  AproxyError,
  BackendTimeoutError,
  ChallengeMismatchError,
  OutOfOrderError,
  UnsupportedVersionError,
  describeError,
  isAproxyError,
} from '../protocol/errors.js';
import type { JsonValue } from '../protocol/json.js';
import {
  attestationRequestFromJson,
  checkAttestationResponse,
  checkNegotiationResponse,
  parseAttestationRequest,
  parseNegotiationRequest,
} from '../protocol/message-parsers.js';
import {
  FAILURE_ANSWER,
  PROTOCOL_VERSION,
  serializeAttestationResponse,
  serializeNegotiationResponse,
  type AttestationRequest,
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
  /**
   * success: the guest got its secret. failure: the guest got the failure
   * answer. aborted: no answer could be given (the guest left, or started
   * a new session first).
   */
  readonly outcome: 'success' | 'failure' | 'aborted';
  /** Error code of the cause when not a success, e.g. ATTESTATION_REJECTED, GUEST_GONE, SUPERSEDED. */
  readonly reason?: string;
  readonly detail?: string;
  /** The phase the session ended in. */
  readonly phase?: 'negotiate' | 'attest';
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
  /** What the backend noted for this session (PhaseContext.annotate), e.g. the resource path. */
  readonly notes?: Readonly<Record<string, string | number>>;
}

/** What a session needs from the guest link it runs on. */
export interface SessionLink {
  readonly connectionId: string;
  readonly peer: GuestPeer;
  readonly backend: Backend;
  /** The backend's name, for errors that are the backend's fault. */
  readonly backendName: string;
  readonly phaseTimeoutMs: number;
  /** Deadline for openSession and close. */
  readonly backendCallTimeoutMs: number;
  readonly log: BackendLogger;
  onBackendRequest(e: BackendRequestEvent): void;
  /** Writes one frame; resolves true once the kernel has it, false when the guest is gone. */
  send(payload: string): Promise<boolean>;
  /**
   * Told of each backend phase's work: `settled` resolves once the backend
   * call has finished, or its deadline passed, even when the session gave up
   * on it earlier (the guest rebooted). The link starts no new session
   * before then, so one link never has more than one server exchange going.
   */
  backendBusy(settled: Promise<void>): void;
}

/** The connection's hold on one session: when it must stop, and the guest's next frame. */
export interface SessionControl {
  /** Aborts when the guest goes away or starts a new session: from then on nothing may be written. */
  readonly ended: AbortSignal;
  /**
   * The guest's next frame (its AttestationRequest), with its JSON already
   * parsed (or the parse error); rejects with the reason when `ended` aborts.
   */
  nextFrame(): Promise<GuestFrame>;
}

/** A frame and what parseStrictJson made of it. */
export interface GuestFrame {
  readonly bytes: Buffer;
  readonly json: JsonValue | Error;
}

/** The guest's stream went away mid-session. */
export class GuestGoneError extends Error {
  readonly code = 'GUEST_GONE';
}

/** The guest sent a new NegotiationRequest (it rebooted) before this session ended. */
export class SessionSupersededError extends Error {
  readonly code = 'SUPERSEDED';
  constructor() {
    super('the guest started a new session (it rebooted) before this one ended; its answer is not sent');
  }
}

/** How a session ended before success. */
class SessionEnd extends Error {
  constructor(
    readonly why: unknown,
    readonly outcome: 'failure' | 'aborted',
    readonly phase: 'negotiate' | 'attest',
    detail?: string,
  ) {
    super(detail ?? describeError(why));
  }
}

type Facts = { -readonly [K in 'tee' | 'reportVersion' | 'measurement' | 'negotiateMs' | 'attestMs' | 'token' | 'notes']?: SessionOutcome[K] };

/** What a phase reports back to the session: server exchanges and notes for its log line. */
interface PhaseReporting {
  observe: PhaseContext['observe'];
  annotate: PhaseContext['annotate'];
}

/**
 * One guest boot, as the protocol reads: negotiate → answer → attest →
 * answer. Every failure the guest can be told about gets the one failure
 * answer (FAILURE_ANSWER), in either phase, and the link carries on. Never
 * throws.
 */
export async function runSession(link: SessionLink, control: SessionControl, number: number, firstFrame: Buffer): Promise<SessionOutcome> {
  const started = performance.now();
  const requests: string[] = [];
  const facts: Facts = {};
  const reporting: PhaseReporting = {
    observe: (e) => {
      requests.push(`${e.endpoint} ${e.status ?? e.error ?? '-'} ${round(e.durationMs)}ms`);
      link.onBackendRequest(e);
    },
    annotate: (fields) => {
      facts.notes = { ...facts.notes, ...fields };
    },
  };
  const outcome = (o: Pick<SessionOutcome, 'outcome' | 'reason' | 'detail' | 'phase'>): SessionOutcome => ({
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

  let end: SessionEnd;
  try {
    await converse(link, control, number, firstFrame, facts, reporting);
    return outcome({ outcome: 'success' });
  } catch (err) {
    end = err instanceof SessionEnd ? err : new SessionEnd(err, 'aborted', 'negotiate');
  }
  // The failure answer, unless the guest left or moved on (then nothing may be written).
  if (end.outcome === 'failure' && !(await answer(link, control, FAILURE_ANSWER))) {
    end = new SessionEnd(new GuestGoneError(), 'aborted', end.phase, `guest left before the failure answer (${end.message})`);
  }
  return outcome({ outcome: end.outcome, reason: codeOf(end.why), detail: end.message, phase: end.phase });
}

async function converse(
  link: SessionLink,
  control: SessionControl,
  number: number,
  firstFrame: Buffer,
  facts: Facts,
  reporting: PhaseReporting,
): Promise<void> {
  // Negotiation.
  const failNegotiation = (err: unknown, detail?: string) => new SessionEnd(err, ended(control, err) ? 'aborted' : 'failure', 'negotiate', detail);
  let negotiation: NegotiationRequest;
  try {
    negotiation = parseNegotiation(firstFrame);
  } catch (err) {
    throw failNegotiation(err);
  }
  facts.tee = negotiation.tee;

  let session: BackendSession;
  try {
    session = await withDeadline(link.backendName, 'openSession', link.backendCallTimeoutMs, () => link.backend.openSession({ connectionId: link.connectionId, sessionNumber: number, log: link.log, peer: link.peer }));
  } catch (err) {
    throw failNegotiation(err, `backend could not open a session: ${describeError(err)}`);
  }
  try {
    const t0 = performance.now();
    let negotiated;
    try {
      negotiated = await phase(link, control, 'negotiate', reporting, async (ctx) =>
        checkNegotiationResponse(await session.negotiate(negotiation, ctx), link.backendName),
      );
    } catch (err) {
      throw failNegotiation(err);
    } finally {
      facts.negotiateMs = since(t0);
    }
    if (!(await answer(link, control, serializeNegotiationResponse(negotiated)))) {
      throw new SessionEnd(control.ended.reason ?? new GuestGoneError(), 'aborted', 'negotiate', 'guest left before the negotiation answer');
    }

    // Attestation.
    let frame: GuestFrame;
    try {
      frame = await control.nextFrame();
    } catch (err) {
      throw new SessionEnd(err, 'aborted', 'attest', err instanceof GuestGoneError ? 'guest closed the connection after negotiation' : undefined);
    }
    const t1 = performance.now();
    let request: AttestationRequest | undefined;
    try {
      if (frame.json instanceof Error) throw frame.json;
      request = attestationRequestFromJson(frame.json);
      if (request.tee !== negotiation.tee) {
        throw new OutOfOrderError(`attestation request is for tee "${request.tee}" but the session negotiated "${negotiation.tee}"`);
      }
      if (!bytesEqual(request.challenge, negotiated.challenge)) throw new ChallengeMismatchError();
      const req = request;
      const response = await phase(link, control, 'attest', reporting, async (ctx) => checkAttestationResponse(await session.attest(req, ctx), link.backendName));
      if (!response.success) throw new AproxyError('ATTESTATION_REJECTED', 'backend answered success:false');
      if (!(await answer(link, control, serializeAttestationResponse(response)))) {
        throw new SessionEnd(control.ended.reason ?? new GuestGoneError(), 'aborted', 'attest', 'guest left before the attestation answer was written');
      }
      if (response.token !== undefined) facts.token = fingerprint(response.token.value);
    } catch (err) {
      if (err instanceof SessionEnd) throw err;
      throw new SessionEnd(err, ended(control, err) ? 'aborted' : 'failure', 'attest');
    } finally {
      facts.attestMs = since(t1);
      Object.assign(facts, describeReport(request));
    }
  } finally {
    try {
      await withDeadline(link.backendName, 'close', link.backendCallTimeoutMs, () => session.close());
    } catch (err) {
      link.log.error({ err: { code: codeOf(err), message: describeError(err) } }, `backend session close failed: ${describeError(err)}`);
    }
  }
}

/** True when the session ended for a reason the guest cannot be answered about (it left, or moved on). */
function ended(control: SessionControl, err: unknown): boolean {
  return control.ended.aborted && (err === control.ended.reason || err instanceof GuestGoneError || err instanceof SessionSupersededError);
}

/** Writes a frame unless the session has ended; true once written. */
async function answer(link: SessionLink, control: SessionControl, payload: string): Promise<boolean> {
  if (control.ended.aborted) return false;
  return link.send(payload);
}

/** Runs one backend phase under a deadline and the session's lifetime. */
async function phase<T>(
  link: SessionLink,
  control: SessionControl,
  name: 'negotiate' | 'attest',
  reporting: PhaseReporting,
  run: (ctx: PhaseContext) => Promise<T>,
): Promise<T> {
  // A plain controller per phase, linked to the session's until the work
  // settles: AbortSignal.any would keep every phase's signal reachable from
  // a long-lived one.
  const abort = new AbortController();
  const ended = control.ended;
  const onEnded = () => abort.abort(ended.reason);
  if (ended.aborted) onEnded();
  else ended.addEventListener('abort', onEnded, { once: true });
  const signal = abort.signal;
  let timer: NodeJS.Timeout | undefined;
  const work = run({ signal, ...reporting, deadline: Date.now() + link.phaseTimeoutMs });
  // The work may outlive the session (the guest rebooted): the link waits
  // for it, up to the deadline, before it starts the next session.
  link.backendBusy(
    new Promise<void>((settled) => {
      const finish = () => {
        clearTimeout(timer);
        ended.removeEventListener('abort', onEnded);
        settled();
      };
      timer = setTimeout(() => {
        abort.abort(new BackendTimeoutError(`${name} phase`, link.phaseTimeoutMs));
        finish();
      }, link.phaseTimeoutMs);
      work.then(finish, finish);
    }),
  );
  // Race so that a backend ignoring the signal still cannot hold the guest.
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    }),
  ]);
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
  if (isAproxyError(err) || err instanceof GuestGoneError || err instanceof SessionSupersededError) return err.code;
  return 'INTERNAL';
}

/** First 12 hex digits of SHA-256: enough to correlate log lines, useless to replay. */
export function fingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 12);
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const since = (t: number) => round(performance.now() - t);
