import type { Dispatcher, Pool } from 'undici';

/** What the KBS client asks of its connection pool. */
export interface HttpPool {
  request(options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  close(): Promise<void>;
}

/**
 * undici's Pool and its request(), each from its own file. The package's
 * index also loads fetch, WebSocket, the HTTP cache and the mocks, and it
 * is what gives every dispatcher its request() (Object.assign onto
 * Dispatcher.prototype): ~100 ms of CPU that the first guest after a start
 * waited for (docs/performance.md). undici has no "exports" map, so the
 * files are reachable; test/backends/kbs/http-pool.test.ts checks that they
 * are what the package exports, so an upgrade that moves them fails there.
 * `default` is a CommonJS file's module.exports, under Node and in dist/bundle.
 */
export async function openHttpPool(origin: string, options: Pool.Options): Promise<HttpPool> {
  const [{ default: PoolClass }, { default: request }] = await Promise.all([
    import('undici/lib/dispatcher/pool.js'),
    import('undici/lib/api/api-request.js'),
  ]);
  const pool = new PoolClass(origin, options);
  return { request: (o) => request.call(pool, o), close: () => pool.close() };
}
