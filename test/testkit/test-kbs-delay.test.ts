// aproxy test-kbs --delay-ms (TestKbs delayMs): a KBS that far away, for
// benchmarks. setTimeout never fires early, so the lower bound is exact.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { request } from 'undici';
import { TestKbs } from '../../src/testkit/test-kbs.js';

test('a test KBS with delayMs answers each request no sooner than that, and answers it as without', async (t) => {
  const kbs = new TestKbs({ measurement: randomBytes(48), secret: randomBytes(32), delayMs: 50 });
  const url = await kbs.start();
  t.after(() => kbs.close());
  const body = JSON.stringify({ version: '0.4.0', tee: 'snp', 'extra-params': '' });
  const t0 = performance.now();
  const res = await request(`${url}/kbs/v0/auth`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const elapsed = performance.now() - t0;
  assert.equal(res.statusCode, 200);
  const challenge = (await res.body.json()) as { nonce?: unknown };
  assert.equal(typeof challenge.nonce, 'string');
  assert.ok(elapsed >= 49, `answered after ${elapsed.toFixed(1)} ms`);
});
