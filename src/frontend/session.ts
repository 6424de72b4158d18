import type { Backend, BackendLogger, BackendRequestEvent, BackendSession } from '../backends/contract.js';
import { withDeadline } from '../backends/deadline.js';
import {
  AttestationRejectedError,
  ChallengeMismatchError,
  codeOf,
  describeError,
  GuestGoneError,
  OutOfOrderError,
  UnsupportedVersionError,
} from '../protocol/errors.js';
import type { JsonValue } from '../protocol/json.js';
import {
  attestationRequestFromJson,
  checkAttestationResponse,
  checkNegotiationResponse,
  negotiationRequestFromJson,
} from '../protocol/message-parsers.js';
import {
  type AttestationRequest,
  FAILURE_ANSWER,
  type NegotiationRequest,
  type NegotiationResponse,
  PROTOCOL_VERSION,
  serializeAttestationResponse,
  serializeNegotiationResponse,
} from '../protocol/messages.js';
import { parseSnpReport, SNP_REPORT_BYTES } from '../protocol/snp-report.js';
import { type PhaseHost, type PhaseReporting, runPhase, type SessionEnding } from './backend-phase.js';
import { classify, fingerprint, type PhaseName, type SessionFacts, type SessionOutcome, type SessionStop } from './session-outcome.js';
import type { GuestPeer } from './transport.js';

export type { SessionOutcome } from './session-outcome.js';

/** What a session needs from the guest link it runs on. */
export interface SessionLink extends PhaseHost {
  readonly connectionId: string;
  readonly peer: GuestPeer;
  readonly backend: Backend;
  /** The backend's name, for errors that are the backend's fault. */
  readonly backendName: string;
  /** Deadline for openSession and close. */
  readonly backendCallTimeoutMs: number;
  readonly log: BackendLogger;
  onBackendRequest(e: BackendRequestEvent): void;
  /** Writes one frame; resolves true once the kernel has it, false when the guest is gone. */
  send(payload: string): Promise<boolean>;
}

/** The connection's hold on one session: when it must stop, and the guest's next frame. */
export interface SessionControl extends SessionEnding {
  /**
   * The guest's next frame (its AttestationRequest), with its JSON already
   * parsed (or the parse error); rejects with the reason when the session ends.
   */
  nextFrame(): Promise<GuestFrame>;
}

/** A frame and what parseStrictJson made of it. */
export interface GuestFrame {
  readonly bytes: Buffer;
  readonly json: JsonValue | Error;
}

/** A phase's result: it went through with a value, or how it stopped; either way what it found out. */
type PhaseResult<T> = { readonly facts: SessionFacts } & (
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly stop: SessionStop }
);

interface Negotiated {
  readonly request: NegotiationRequest;
  readonly response: NegotiationResponse;
  readonly session: BackendSession;
}

/**
 * One guest boot, as the protocol reads: negotiate → answer → attest →
 * answer. Every failure the guest can be told about gets the one failure
 * answer (FAILURE_ANSWER), in either phase, and the link carries on. Never
 * throws.
 */
export async function runSession(
  link: SessionLink,
  control: SessionControl,
  number: number,
  firstFrame: GuestFrame,
): Promise<SessionOutcome> {
  const started = performance.now();
  const trace = new SessionTrace(link);
  const negotiated = await negotiate(link, control, number, firstFrame, trace);
  const attested = negotiated.ok ? await attest(link, control, negotiated.value, trace) : undefined;
  if (negotiated.session !== undefined) await closeBackendSession(link, negotiated.session);
  const last = attested ?? negotiated;
  const verdict = await classify(last.ok ? { outcome: 'success' } : { outcome: 'stopped', stop: last.stop }, control, () =>
    answer(link, control, FAILURE_ANSWER),
  );
  return {
    connectionId: link.connectionId,
    session: number,
    transport: link.peer.transport,
    listener: link.peer.listener,
    ...(link.peer.cid === undefined ? {} : { cid: link.peer.cid }),
    ...verdict,
    ...negotiated.facts,
    ...attested?.facts,
    ...(trace.notes === undefined ? {} : { notes: trace.notes }),
    totalMs: since(started),
    backend: trace.requests,
  };
}

/** Negotiation: parse the request, open the backend's session, run its phase, answer. */
async function negotiate(
  link: SessionLink,
  control: SessionControl,
  number: number,
  frame: GuestFrame,
  reporting: PhaseReporting,
): Promise<PhaseResult<Negotiated> & { readonly session?: BackendSession }> {
  const stop = (cause: unknown, detail?: string) => ({ ok: false, stop: stopIn('negotiate', cause, detail) }) as const;
  let request: NegotiationRequest;
  try {
    request = parseNegotiation(frame);
  } catch (err) {
    return { facts: {}, ...stop(err) };
  }
  const facts = { tee: request.tee };
  let session: BackendSession;
  try {
    session = await withDeadline(link.backendName, 'openSession', link.backendCallTimeoutMs, () =>
      link.backend.openSession({ connectionId: link.connectionId, sessionNumber: number, log: link.log, peer: link.peer }),
    );
  } catch (err) {
    return { facts, ...stop(err, `backend could not open a session: ${describeError(err)}`) };
  }
  const t0 = performance.now();
  let response: NegotiationResponse;
  try {
    response = await runPhase(link, control, 'negotiate', reporting, async (ctx) =>
      checkNegotiationResponse(await session.negotiate(request, ctx), link.backendName),
    );
  } catch (err) {
    return { session, facts: { ...facts, negotiateMs: since(t0) }, ...stop(err) };
  }
  const timed = { ...facts, negotiateMs: since(t0) };
  if (!(await answer(link, control, serializeNegotiationResponse(response)))) {
    return { session, facts: timed, ...stop(control.endedBy ?? new GuestGoneError(), 'guest left before the negotiation answer') };
  }
  return { session, facts: timed, ok: true, value: { request, response, session } };
}

/** Attestation: the guest's request, checked against the negotiation, the backend's phase, the answer. */
async function attest(link: SessionLink, control: SessionControl, n: Negotiated, reporting: PhaseReporting): Promise<PhaseResult<void>> {
  const stop = (cause: unknown, detail?: string) => ({ ok: false, stop: stopIn('attest', cause, detail) }) as const;
  let frame: GuestFrame;
  try {
    frame = await control.nextFrame();
  } catch (err) {
    return { facts: {}, ...stop(err, err instanceof GuestGoneError ? 'guest closed the connection after negotiation' : undefined) };
  }
  const t1 = performance.now();
  let request: AttestationRequest;
  try {
    request = attestationRequestFor(frame, n);
  } catch (err) {
    return { facts: { attestMs: since(t1) }, ...stop(err) };
  }
  const facts = describeReport(request);
  try {
    const response = await runPhase(link, control, 'attest', reporting, async (ctx) =>
      checkAttestationResponse(await n.session.attest(request, ctx), link.backendName),
    );
    if (!response.success)
      return { facts: { ...facts, attestMs: since(t1) }, ...stop(new AttestationRejectedError('the backend answered success:false')) };
    if (!(await answer(link, control, serializeAttestationResponse(response)))) {
      return {
        facts: { ...facts, attestMs: since(t1) },
        ...stop(control.endedBy ?? new GuestGoneError(), 'guest left before the attestation answer was written'),
      };
    }
    return {
      ok: true,
      value: undefined,
      facts: { ...facts, attestMs: since(t1), ...(response.token === undefined ? {} : { token: fingerprint(response.token.value) }) },
    };
  } catch (err) {
    return { facts: { ...facts, attestMs: since(t1) }, ...stop(err) };
  }
}

function stopIn(phase: PhaseName, cause: unknown, detail: string | undefined): SessionStop {
  return detail === undefined ? { cause, phase } : { cause, phase, detail };
}

/** The backend's session ends with the guest's; a failure to close is logged, never the guest's business. */
async function closeBackendSession(link: SessionLink, session: BackendSession): Promise<void> {
  try {
    await withDeadline(link.backendName, 'close', link.backendCallTimeoutMs, () => session.close());
  } catch (err) {
    link.log.error({ err: { code: codeOf(err), message: describeError(err) } }, `backend session close failed: ${describeError(err)}`);
  }
}

/** Server exchanges and backend notes of one session, for its log line (each exchange also goes to the link, for metrics), and its backend signal. */
class SessionTrace implements PhaseReporting {
  readonly abort = new AbortController();
  readonly requests: string[] = [];
  notes: Record<string, string | number> | undefined;

  constructor(private readonly link: SessionLink) {}

  readonly observe = (e: BackendRequestEvent): void => {
    this.requests.push(`${e.endpoint} ${e.status ?? e.error ?? '-'} ${round(e.durationMs)}ms`);
    this.link.onBackendRequest(e);
  };

  readonly annotate = (fields: Readonly<Record<string, string | number>>): void => {
    this.notes = { ...this.notes, ...fields };
  };
}

/** Writes a frame unless the session has ended; true once written. */
async function answer(link: SessionLink, control: SessionControl, payload: string): Promise<boolean> {
  if (control.endedBy !== undefined) return false;
  return link.send(payload);
}

function parseNegotiation(frame: GuestFrame): NegotiationRequest {
  if (frame.json instanceof Error) throw frame.json;
  let req: NegotiationRequest;
  try {
    req = negotiationRequestFromJson(frame.json);
  } catch (err) {
    if (looksLikeAttestation(frame.json)) throw new OutOfOrderError('attestation request received before any negotiation request');
    throw err;
  }
  if (req.version.some((v, i) => v !== PROTOCOL_VERSION[i])) throw new UnsupportedVersionError(req.version);
  return req;
}

/** The guest's AttestationRequest, for the TEE and challenge it negotiated. */
function attestationRequestFor(frame: GuestFrame, n: Negotiated): AttestationRequest {
  if (frame.json instanceof Error) throw frame.json;
  const request = attestationRequestFromJson(frame.json);
  if (request.tee !== n.request.tee) {
    throw new OutOfOrderError(`attestation request is for tee "${request.tee}" but the session negotiated "${n.request.tee}"`);
  }
  if (!bytesEqual(request.challenge, n.response.challenge)) throw new ChallengeMismatchError();
  return request;
}

function looksLikeAttestation(json: JsonValue): boolean {
  try {
    attestationRequestFromJson(json);
    return true;
  } catch {
    return false;
  }
}

function describeReport(req: AttestationRequest): SessionFacts {
  const report = req.evidence.value.report;
  if (report.length !== SNP_REPORT_BYTES) return {};
  const r = parseSnpReport(report);
  return { reportVersion: r.version, measurement: Buffer.from(r.measurement).toString('hex') };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const since = (t: number) => round(performance.now() - t);
