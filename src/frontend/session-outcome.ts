import { createHash } from 'node:crypto';
import { type AproxyErrorCode, codeOf, describeError } from '../protocol/errors.js';
import type { SessionEnding } from './backend-phase.js';
import type { GuestPeer } from './transport.js';

export type PhaseName = 'negotiate' | 'attest';

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
  /** The reason code when not a success (protocol/reason-codes.ts), e.g. ATTESTATION_REJECTED, GUEST_GONE, SUPERSEDED. */
  readonly reason?: AproxyErrorCode;
  readonly detail?: string;
  /** The phase the session ended in. */
  readonly phase?: PhaseName;
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

/** What a phase found out, for the session's log line. */
export type SessionFacts = Partial<Pick<SessionOutcome, 'tee' | 'reportVersion' | 'measurement' | 'negotiateMs' | 'attestMs' | 'token'>>;

/** How a session stopped short of success: the cause, the phase, and a detail when the cause's message is not enough. */
export interface SessionStop {
  readonly cause: unknown;
  readonly phase: PhaseName;
  readonly detail?: string;
}

/** How a session ended, before the failure answer (if any) is written. */
export type SessionEnd = { readonly outcome: 'success' } | { readonly outcome: 'stopped'; readonly stop: SessionStop };

export type Verdict = Pick<SessionOutcome, 'outcome' | 'reason' | 'detail' | 'phase'>;

/**
 * The one place a session's end becomes its outcome. A cause the guest
 * can no longer be answered about (it left, or rebooted: the session's own
 * end reason) is `aborted`; anything else earns the failure answer,
 * which `answerFailure` writes, and is a `failure` if the guest took it.
 */
export async function classify(
  end: SessionEnd,
  session: Pick<SessionEnding, 'endedBy'>,
  answerFailure: () => Promise<boolean>,
): Promise<Verdict> {
  if (end.outcome === 'success') return { outcome: 'success' };
  const { cause, phase } = end.stop;
  const detail = end.stop.detail ?? describeError(cause);
  const reason = codeOf(cause);
  if (reason === 'GUEST_GONE' || reason === 'SUPERSEDED' || (session.endedBy !== undefined && cause === session.endedBy)) {
    return { outcome: 'aborted', reason, detail, phase };
  }
  if (!(await answerFailure())) {
    return {
      outcome: 'aborted',
      reason: session.endedBy === undefined ? 'GUEST_GONE' : codeOf(session.endedBy),
      detail: `guest left before the failure answer (${detail})`,
      phase,
    };
  }
  return { outcome: 'failure', reason, detail, phase };
}

/** First 12 hex digits of SHA-256: enough to correlate log lines, useless to replay. */
export function fingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 12);
}
