import type { PhaseContext } from '../backends/contract.js';
import { BackendTimeoutError } from '../protocol/errors.js';
import type { PhaseName } from './session-outcome.js';

export interface PhaseHost {
  readonly phaseTimeoutMs: number;
  /** Told when the phase's backend work has settled, or its deadline passed, even after the session gave up on it. */
  backendBusy(settled: Promise<void>): void;
}

/** A session's lifetime as its phases see it. */
export interface SessionEnding {
  /** Set once the guest goes away or starts a new session: from then on nothing may be written. */
  readonly endedBy: Error | undefined;
  /** Calls `listener` when the session ends (at once if it has); returns what removes it. */
  onEnded(listener: (reason: Error) => void): () => void;
}

/**
 * What a phase reports back to the session (server exchanges and notes for
 * its log line), and the backend's signal: one per session, aborted when the
 * session ends or a phase's deadline passes (no phase follows either).
 */
export interface PhaseReporting extends Pick<PhaseContext, 'observe' | 'annotate'> {
  readonly abort: AbortController;
}

/**
 * Runs one backend phase under its deadline and the session's lifetime:
 * rejects with the session's end reason as soon as it ends, or with
 * BackendTimeoutError at the deadline, whatever the backend does with its
 * signal.
 */
export function runPhase<T>(
  host: PhaseHost,
  session: SessionEnding,
  name: PhaseName,
  reporting: PhaseReporting,
  run: (ctx: PhaseContext) => Promise<T>,
): Promise<T> {
  // Linked to the session until the work settles; the deadline aborts it
  // too, and the session goes on to answer the guest.
  const { abort, observe, annotate } = reporting;
  return new Promise<T>((resolve, reject) => {
    const stop = (reason: Error) => {
      abort.abort(reason);
      reject(reason);
    };
    const unlink = session.onEnded(stop);
    // The work may outlive the session (the guest rebooted): the link waits
    // for it, up to the deadline, before it starts the next session.
    let settled!: () => void;
    host.backendBusy(new Promise<void>((r) => (settled = r)));
    const finish = () => {
      clearTimeout(timer);
      unlink();
      settled();
    };
    const timer = setTimeout(() => {
      stop(new BackendTimeoutError(`${name} phase`, host.phaseTimeoutMs));
      finish();
    }, host.phaseTimeoutMs);
    run({ signal: abort.signal, observe, annotate, deadline: Date.now() + host.phaseTimeoutMs }).then(
      (value) => {
        finish();
        resolve(value);
      },
      (err: unknown) => {
        finish();
        reject(err);
      },
    );
  });
}
