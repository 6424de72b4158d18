import { PluginFaultError } from '../protocol/errors.js';

/** The longest delay Node's timers keep (2^31-1 ms, about 24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Deadline for loading a plugin module and for a backend's create(), openSession() and close(). */
export const DEFAULT_BACKEND_CALL_TIMEOUT_MS = 10_000;

/**
 * A backend call outside the phases (loading a plugin, create,
 * openSession, close) under its own deadline: a plugin that never returns
 * must not hold a start-up, a link or a shutdown. The error names the
 * backend and the call, unless `timeoutError` makes another.
 */
export async function withDeadline<T>(
  backend: string,
  call: string,
  ms: number,
  run: () => T | Promise<T>,
  timeoutError: () => Error = () => new PluginFaultError(backend, `${call}() did not return within ${ms} ms`),
): Promise<T> {
  const result = run();
  // Most calls return at once (the KBS backends' openSession and close): no timer for those.
  if (!(result instanceof Promise)) return result;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      result,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
