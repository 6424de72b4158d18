import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LogBursts } from '../frontend/log-bursts.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { describeError } from '../protocol/errors.js';
import { exitAfterLog, type Logger } from './log.js';

/** aproxy's own code and its dependencies: dist/ and node_modules/ beside this package's package.json. */
const OWN_PREFIXES = [join(PACKAGE_ROOT, 'dist') + sep, join(PACKAGE_ROOT, 'node_modules') + sep];

/** Exit code for a fault in aproxy itself: EX_SOFTWARE, so the service manager restarts it. */
export const EXIT_INTERNAL_FAULT = 70;

/**
 * The file that raised `err`: the first stack frame outside aproxy, its
 * dependencies and Node itself, i.e. a plugin's module. Undefined when
 * every frame is ours (or there is no stack).
 */
export function faultOrigin(err: unknown): string | undefined {
  const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : '';
  for (const line of stack.split('\n').slice(1)) {
    // A file path right after `at ` or `(`: not one inside a Node-internal name such as node:internal/timers.
    const m = /(?:^at |\()((?:file:\/\/)?\/[^()]*?):\d+:\d+\)?$/.exec(line.trim());
    if (m?.[1] === undefined) continue;
    const file = m[1].startsWith('file://') ? fileURLToPath(m[1]) : m[1];
    if (!OWN_PREFIXES.some((p) => file.startsWith(p))) return file;
  }
  return undefined;
}

/**
 * Plugins are trusted code that runs in the proxy's process; a mistake in
 * one must still not take every guest on the host down with it.
 *
 *  - An unhandled rejection is logged, with the plugin's file when its
 *    stack names one, and the proxy carries on: nobody awaited that
 *    promise, so nothing is left waiting on it.
 *  - An uncaught exception (a throw in a plugin's timer or callback) from a
 *    plugin's file is logged and the proxy carries on: only that callback
 *    was unwound. One from aproxy itself is a bug whose damage cannot be
 *    known: it is logged as fatal and the process exits 70, for the service
 *    manager to restart it.
 *
 * `process.exit()` in a plugin cannot be defended against; the shipped unit
 * restarts the service. Repeats from one origin are logged once per burst.
 */
export function guardProcessFaults(log: Logger): () => void {
  const bursts = new LogBursts(log);
  const report = (kind: 'unhandled rejection' | 'uncaught exception', err: unknown, origin: string | undefined) => {
    const fields = {
      fault: kind,
      plugin: origin,
      err: { message: describeError(err), name: err instanceof Error ? err.name : typeof err },
    };
    const message =
      origin === undefined
        ? `${kind} with no plugin in its stack: ${describeError(err)}`
        : `${kind} in plugin ${origin}: ${describeError(err)}; the proxy carries on`;
    bursts.warn(`${kind}:${origin ?? '-'}`, fields, message);
  };
  const onRejection = (reason: unknown) => report('unhandled rejection', reason, faultOrigin(reason));
  const onException = (err: unknown) => {
    const origin = faultOrigin(err);
    if (origin !== undefined) {
      report('uncaught exception', err, origin);
      return;
    }
    log.fatal(
      { err: { message: describeError(err), stack: err instanceof Error ? err.stack : undefined } },
      `internal fault, exiting: ${describeError(err)}`,
    );
    exitAfterLog(log, EXIT_INTERNAL_FAULT);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    bursts.flush();
  };
}
