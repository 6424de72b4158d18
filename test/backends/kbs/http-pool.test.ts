// The KBS client's pool is undici's Pool and request() loaded from their own
// files (src/backends/kbs/http-pool.ts): they must be what the package
// exports, so an undici upgrade that moves them fails here, not in a boot.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { openHttpPool } from '../../../src/backends/kbs/http-pool.js';

const require = createRequire(import.meta.url);

test("the pool's files are undici's own Pool and Dispatcher#request", () => {
  const undici = require('undici') as typeof import('undici');
  assert.equal(require('undici/lib/dispatcher/pool.js'), undici.Pool);
  assert.equal(require('undici/lib/api/api-request.js'), undici.Dispatcher.prototype.request);
});

test('a pool opened from those files makes a request and closes', async (t) => {
  const server = createServer((req, res) => res.end(`${req.method} ${req.url}`)).listen(0, '127.0.0.1');
  t.after(() => server.close());
  await once(server, 'listening');
  const pool = await openHttpPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 });
  const res = await pool.request({ path: '/kbs/v0/auth', method: 'POST', body: '{}' });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'POST /kbs/v0/auth');
  await pool.close();
});
