import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, type TestContext, test } from 'node:test';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import type { Endpoint, Fault, FaultyKbs } from '../support/faulty-kbs.js';
import { type Rig, startFaultyRig, startRig } from '../support/harness.js';

const faultyRig = (t: TestContext, authRetryBudgetMs = 0) =>
  startFaultyRig(t, { backend: { requestTimeoutMs: 400, authRetryBudgetMs }, proxy: { phaseTimeoutMs: 3000 } });

async function bootOnce(rig: Rig, t: TestContext, measurement = rig.measurement) {
  const g = await SimulatedGuest.connect(rig.unix);
  t.after(() => g.close());
  return g.boot({ measurement, expectSecret: rig.secret });
}

/** After any fault, a well-behaved guest must still get its secret. */
async function assertHealthy(rig: Rig, kbs: FaultyKbs, t: TestContext): Promise<void> {
  kbs.clear();
  const r = await bootOnce(rig, t);
  assert.equal(r.error, undefined);
  assert.equal(r.secretMatches, true);
}

const cases: Array<{ name: string; endpoint: Endpoint; fault: Fault; reason: string; detail: RegExp }> = [
  {
    name: '/auth answers 500',
    endpoint: 'auth',
    fault: { kind: 'status', status: 500 },
    reason: 'BACKEND_HTTP',
    detail: /auth answered HTTP 500/,
  },
  { name: '/auth answers non-JSON', endpoint: 'auth', fault: { kind: 'garbage' }, reason: 'BACKEND_PROTOCOL', detail: /not JSON/ },
  {
    name: '/auth answers JSON of the wrong shape',
    endpoint: 'auth',
    fault: { kind: 'wrong-shape' },
    reason: 'BACKEND_PROTOCOL',
    detail: /nonce/,
  },
  {
    name: '/auth sets no cookie',
    endpoint: 'auth',
    fault: { kind: 'no-cookie' },
    reason: 'BACKEND_PROTOCOL',
    detail: /no kbs-session-id cookie/,
  },
  { name: '/auth resets the connection', endpoint: 'auth', fault: { kind: 'reset' }, reason: 'BACKEND_UNREACHABLE', detail: /auth/ },
  {
    name: '/auth hangs past the request timeout',
    endpoint: 'auth',
    fault: { kind: 'hang' },
    reason: 'BACKEND_TIMEOUT',
    detail: /no complete answer within 400 ms/,
  },
  {
    name: '/attest answers 503',
    endpoint: 'attest',
    fault: { kind: 'status', status: 503 },
    reason: 'BACKEND_HTTP',
    detail: /attest answered HTTP 503/,
  },
  {
    name: '/attest answers 401 with a reason',
    endpoint: 'attest',
    fault: { kind: 'status', status: 401, body: '{"type":"policy","detail":"tcb too old"}' },
    reason: 'ATTESTATION_REJECTED',
    detail: /HTTP 401: policy: tcb too old/,
  },
  { name: '/attest answers non-JSON', endpoint: 'attest', fault: { kind: 'garbage' }, reason: 'BACKEND_PROTOCOL', detail: /not JSON/ },
  {
    name: '/attest drops the connection mid-body',
    endpoint: 'attest',
    fault: { kind: 'drop-mid-body' },
    reason: 'BACKEND_UNREACHABLE',
    detail: /attest/,
  },
  { name: '/attest hangs', endpoint: 'attest', fault: { kind: 'hang' }, reason: 'BACKEND_TIMEOUT', detail: /attest: no complete answer/ },
  {
    name: '/resource answers 404',
    endpoint: 'resource',
    fault: { kind: 'status', status: 404 },
    reason: 'ATTESTATION_REJECTED',
    detail: /resource\/default\/sample\/test answered HTTP 404/,
  },
  {
    name: '/resource answers the wrong shape',
    endpoint: 'resource',
    fault: { kind: 'wrong-shape' },
    reason: 'BACKEND_PROTOCOL',
    detail: /KBS resource JWE/,
  },
  {
    name: '/resource answers an oversized body',
    endpoint: 'resource',
    fault: { kind: 'huge-body' },
    reason: 'BACKEND_PROTOCOL',
    detail: /larger than/,
  },
];

describe('a misbehaving KBS costs only the affected guest', () => {
  for (const c of cases) {
    test(`${c.name}: the failure answer in the ${c.endpoint === 'auth' ? 'negotiation' : 'attestation'} phase, logged as ${c.reason}`, async (t) => {
      const { rig, kbs } = await faultyRig(t);
      kbs.inject(c.endpoint, c.fault);
      const g = await SimulatedGuest.connect(rig.unix);
      t.after(() => g.close());
      const r = await g.boot({ measurement: rig.measurement, expectSecret: rig.secret });
      assert.equal(r.ok, false);
      assert.equal(r.attested, false, 'the guest gets the failure answer, never silence');
      if (c.endpoint === 'auth') assert.match(r.error ?? '', /negotiation failed/);
      const [o] = await rig.sessions(1);
      assert.equal(o?.outcome, 'failure');
      assert.equal(o?.reason, c.reason);
      assert.match(o?.detail ?? '', c.detail);
      const line = rig.logs.records.find((l) => l.msg !== undefined && String(l.msg).startsWith('session ') && l.conn === o?.connectionId);
      assert.ok(line, 'one log line names the connection and the outcome');
      await assertHealthy(rig, kbs, t);
      kbs.clear();
      assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true, 'the same link boots again');
    });
  }

  test('a KBS that is down: /auth is retried for the retry budget, one warning for the session, the count in its line, then the guest is answered', async (t) => {
    const rig = await startRig(t, { url: 'http://127.0.0.1:9', backend: { requestTimeoutMs: 400, authRetryBudgetMs: 1500 } });
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    const r = await g.boot({ measurement: rig.measurement });
    assert.equal(r.attested, false);
    const [o] = await rig.sessions(1);
    // Answered once the budget was spent: at the phase deadline it would be BACKEND_TIMEOUT.
    assert.equal(o?.reason, 'BACKEND_UNREACHABLE');
    assert.match(o?.detail ?? '', /ECONNREFUSED/);
    const warnings = rig.logs.records.filter((l) => /retrying within the retry budget/.test(String(l.msg)));
    assert.equal(warnings.length, 1, 'one warning for the session, not one a retry');
    assert.equal(warnings[0]?.level, 40);
    assert.equal(warnings[0]?.session, 1, 'keyed by the session');
    assert.equal(warnings[0]?.conn, o?.connectionId);
    const retries = Number(o?.notes?.authRetries);
    assert.ok(retries >= 2, `retried with backoff (${retries} retries, counted in the session's line)`);
    assert.match(String(o?.notes?.authLastError), /ECONNREFUSED/);
    assert.equal((o?.backend ?? []).filter((e) => e.startsWith('POST /kbs/v0/auth')).length, retries + 1, 'every attempt is in its line');
  });

  test('a flaky /auth (two 503s) is retried and the boot succeeds', async (t) => {
    const { rig, kbs } = await faultyRig(t, 10_000);
    kbs.inject('auth', { kind: 'status', status: 503 }, 2);
    const r = await bootOnce(rig, t);
    assert.equal(r.secretMatches, true);
    assert.equal(kbs.hits.auth, 3);
  });

  test('/attest is never replayed: one 503 fails the session', async (t) => {
    const { rig, kbs } = await faultyRig(t);
    kbs.inject('attest', { kind: 'status', status: 503 }, 1);
    const r = await bootOnce(rig, t);
    assert.equal(r.attested, false);
    assert.equal(kbs.hits.attest, 1);
    await assertHealthy(rig, kbs, t);
  });

  test('a guest that vanishes while the KBS is slow: its request runs to its deadline, then the kbs-test queue moves on', async (t) => {
    // The request is not cut when the guest leaves (that would tear down a
    // pooled connection, and a flood would churn them); the kbs-test server's
    // global state stays locked until the abandoned request has ended.
    const { rig, kbs } = await startFaultyRig(t, { protocol: 'kbs-test', backend: { requestTimeoutMs: 500 } });
    kbs.inject('attest', { kind: 'hang' });
    const g = await SimulatedGuest.connect(rig.unix);
    const inAttest = new Promise<void>((resolve) => {
      const onHit = (endpoint: string) => {
        if (endpoint !== 'attest') return;
        kbs.off('hit', onHit);
        resolve();
      };
      kbs.on('hit', onHit);
    });
    const aborted = once(kbs, 'aborted');
    const booting = g.boot({ measurement: rig.measurement });
    // Wait until the proxy is inside /attest for this guest, then pull the plug.
    await inAttest;
    g.close();
    await booting;
    await aborted;
    const [o] = await rig.sessions(1);
    assert.equal(o?.outcome, 'aborted');
    assert.equal(o?.reason, 'GUEST_GONE');
    await assertHealthy(rig, kbs, t);
    assert.equal(kbs.aborted, 1, 'the hanging KBS request ended at its deadline');
  });
});
