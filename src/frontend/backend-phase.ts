import type { PhaseContext } from '../backends/contract.js';
import { BackendTimeoutError } from '../protocol/errors.js';
import type { PhaseName } from './session-outcome.js';

export interface PhaseHost {
  readonly phaseTimeoutMs: number;
  /** Told when the phase's backend work has settled, or its deadline passed, even after the session gave up on it. */
  backendBusy(settled: Promise<void>): void;
}

/** What a phase reports back to the session: server exchanges and notes for its log line. */
export type PhaseReporting = Pick<PhaseContext, 'observe' | 'annotate'>;

/**
 * Runs one backend phase under its deadline and the session's lifetime:
 * rejects with `ended`'s reason as soon as the session ends, or with
 * BackendTimeoutError at the deadline, whatever the backend does with its
 * signal.
 */
export async function runPhase<T>(
  host: PhaseHost,
  ended: AbortSignal,
  name: PhaseName,
  reporting: PhaseReporting,
  run: (ctx: PhaseContext) => Promise<T>,
): Promise<T> {
  // A plain controller per phase, linked to the session's until the work
  // settles: AbortSignal.any would keep every phase's signal reachable from
  // a long-lived one.
  const abort = new AbortController();
  const onEnded = () => abort.abort(ended.reason);
  if (ended.aborted) onEnded();
  else ended.addEventListener('abort', onEnded, { once: true });
  const signal = abort.signal;
  let timer: NodeJS.Timeout | undefined;
  const work = run({ signal, ...reporting, deadline: Date.now() + host.phaseTimeoutMs });
  // The work may outlive the session (the guest rebooted): the link waits
  // for it, up to the deadline, before it starts the next session.
  host.backendBusy(
    new Promise<void>((settled) => {
      const finish = () => {
        clearTimeout(timer);
        ended.removeEventListener('abort', onEnded);
        settled();
      };
      timer = setTimeout(() => {
        abort.abort(new BackendTimeoutError(`${name} phase`, host.phaseTimeoutMs));
        finish();
      }, host.phaseTimeoutMs);
      work.then(finish, finish);
    }),
  );
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    }),
  ]);
}
