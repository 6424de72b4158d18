import type { EventEmitter } from 'node:events';
import module from 'node:module';
import type { Logger } from './log.js';

type CompileCacheApi = { getCompileCacheDir?: () => string | undefined; flushCompileCache?: () => void };

/**
 * V8's compile cache (Node 22 and later), switched on by Node's own
 * NODE_COMPILE_CACHE, which the shipped unit points at its CacheDirectory:
 * a start compiles none of the code an earlier start compiled. Node writes
 * the cache when the process exits, so a proxy that runs for months, or is
 * killed, would never write it; it is written once the first session has
 * loaded everything a session needs.
 */
export function writeCompileCacheAfterFirstSession(server: EventEmitter, log: Logger): void {
  const api = module as unknown as CompileCacheApi;
  const dir = api.getCompileCacheDir?.();
  if (api.flushCompileCache === undefined || dir === undefined) return;
  server.once('session', () =>
    setImmediate(() => {
      api.flushCompileCache?.();
      log.info({ compileCache: dir }, 'compile cache written: the next start compiles only what changed');
    }),
  );
}
