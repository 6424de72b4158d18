import { PluginFaultError } from '../protocol/errors.js';

/**
 * A backend call outside the phases (create, openSession, close) under its
 * own deadline: a plugin that never returns must not hold a link or a
 * shutdown. The error names the backend and the call.
 */
export async function withDeadline<T>(backend: string, call: string, ms: number, run: () => T | Promise<T>): Promise<T> {
  const result = run();
  // Most calls return at once (the KBS backends' openSession and close): no timer for those.
  if (!(result instanceof Promise)) return result;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      result,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new PluginFaultError(backend, `${call}() did not return within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
