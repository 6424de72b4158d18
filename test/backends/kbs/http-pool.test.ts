// The KBS client's pool is undici's Pool loaded from its own file and driven
// through dispatch() (src/backends/kbs/http-pool.ts): the file must be what
// the package exports, so an undici upgrade that moves it fails here, not in
// a boot; and the handler must read an answer whole, within its limits.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { AnswerTooLarge, BodyTooSlow, type HttpPool, openHttpPool } from '../../../src/backends/kbs/http-pool.js';

const require = createRequire(import.meta.url);

async function poolFor(t: TestContext, handler: RequestListener): Promise<HttpPool> {
  const server = createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const pool = await openHttpPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 });
  t.after(async () => {
    await pool.close();
    server.closeAllConnections();
    server.close();
  });
  return pool;
}

const limits = { maxBytes: 64, deadlineMs: 10_000 };

test("the pool's file is undici's own Pool", () => {
  const undici = require('undici') as typeof import('undici');
  assert.equal(require('undici/lib/dispatcher/pool.js'), undici.Pool);
});

test('an exchange sends the method, path, headers and body, and gathers the status, every Set-Cookie and the body', async (t) => {
  const pool = await poolFor(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2']);
      res.statusCode = 201;
      res.end(`${req.method} ${req.url} ${req.headers['x-probe']} ${body}`);
    });
  });
  const statuses: number[] = [];
  const a = await pool.exchange({ path: '/kbs/v0/auth', method: 'POST', headers: { 'x-probe': 'p' }, body: '{}' }, limits, (s) =>
    statuses.push(s),
  );
  assert.deepEqual(a, { status: 201, setCookie: ['a=1; Path=/', 'b=2'], text: 'POST /kbs/v0/auth p {}' });
  assert.deepEqual(statuses, [201]);
  const b = await pool.exchange({ path: '/x', method: 'GET', headers: {} }, limits);
  assert.deepEqual(
    b,
    { status: 201, setCookie: ['a=1; Path=/', 'b=2'], text: 'GET /x undefined ' },
    'the kept-alive connection serves the next one',
  );
});

test('an answer larger than maxBytes fails with AnswerTooLarge, its status already told', async (t) => {
  const pool = await poolFor(t, (_req, res) => res.end('x'.repeat(65)));
  const statuses: number[] = [];
  await assert.rejects(
    pool.exchange({ path: '/', method: 'GET', headers: {} }, limits, (s) => statuses.push(s)),
    AnswerTooLarge,
  );
  assert.deepEqual(statuses, [200]);
  assert.equal(
    (await pool.exchange({ path: '/', method: 'GET', headers: {} }, { ...limits, maxBytes: 65 })).text.length,
    65,
    'the pool serves on',
  );
});

test('a body that trickles past deadlineMs fails with BodyTooSlow (a timeout code) at its next chunk', async (t) => {
  const timers: Array<ReturnType<typeof setInterval>> = [];
  t.after(() => {
    for (const i of timers) clearInterval(i);
  });
  const pool = await poolFor(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    timers.push(setInterval(() => res.write(' '), 20));
  });
  const err = await pool.exchange({ path: '/', method: 'GET', headers: {} }, { maxBytes: 1 << 20, deadlineMs: 100 }).then(
    () => assert.fail('a trickling body must not be waited for'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof BodyTooSlow);
  assert.equal(err.code, 'UND_ERR_BODY_TIMEOUT');
});

test('a connection dropped mid-body fails the exchange with the transport error', async (t) => {
  const pool = await poolFor(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('{"partial":');
    setImmediate(() => res.socket?.destroy());
  });
  await assert.rejects(pool.exchange({ path: '/', method: 'GET', headers: {} }, limits), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'UND_ERR_SOCKET');
    return true;
  });
});
