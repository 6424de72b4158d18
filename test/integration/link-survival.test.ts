// The guest's link is the VM's for life (`-serial unix:` never reconnects)
// and SVSM polls it with no timeout: these tests hold the proxy to never
// losing the link and never going silent.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { type BackendSession, defineBackend } from '../../src/backends/contract.js';
import { NEGOTIATION_PARAMS, parseAttestationResponse } from '../../src/protocol/index.js';
import { runGuestFleet, SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { type Rig, startFaultyRig, startRig, tempDir } from '../support/harness.js';
import { attestationFor, FAILURE, NEGOTIATE, type RawGuest, rawGuestFor } from '../support/raw-guest.js';

const raw = (rig: Rig, t: TestContext) => rawGuestFor(rig.unix, t);
const negotiateOk = async () => ({ challenge: new Uint8Array(32), params: [...NEGOTIATION_PARAMS] });

/** A full good boot on an existing raw link. */
async function bootOn(g: RawGuest, rig: Rig): Promise<void> {
  g.send(NEGOTIATE);
  const neg = (await g.next()) ?? '';
  assert.ok(neg.startsWith('{"challenge"'), `a NegotiationResponse, got ${neg}`);
  g.send(attestationFor(rig.measurement, neg));
  assert.equal(parseAttestationResponse((await g.next()) ?? '').success, true);
}

describe('a NegotiationRequest always starts a new session', () => {
  test('a guest that reboots between negotiation and attestation gets a fresh negotiation, then succeeds', async (t) => {
    const rig = await startRig(t);
    const g = await raw(rig, t);
    g.send(NEGOTIATE);
    assert.ok((await g.next())?.startsWith('{"challenge"'));
    // Reboot: SVSM starts over with a NegotiationRequest.
    await bootOn(g, rig);
    const outcomes = await rig.sessions(2);
    assert.equal(outcomes[0]?.outcome, 'aborted');
    assert.equal(outcomes[0]?.reason, 'SUPERSEDED');
    assert.equal(outcomes[1]?.outcome, 'success');
  });

  test('a reboot while /attest is in flight: the old answer is never written, the new boot is answered and succeeds', async (t) => {
    // The old /attest is not cut (that would cost a pooled connection): the
    // new boot starts once it has ended, here at a short request deadline.
    const { rig, kbs } = await startFaultyRig(t, { protocol: 'kbs-test', backend: { requestTimeoutMs: 1000 } });
    kbs.inject('attest', { kind: 'hang' }, 1);
    const g = await raw(rig, t);
    g.send(NEGOTIATE);
    const neg = await g.next();
    assert.ok(neg);
    const inAttest = once(kbs, 'hit');
    g.send(attestationFor(rig.measurement, neg));
    await inAttest; // /auth was the first hit; wait for /attest
    while (kbs.hits.attest === 0) await once(kbs, 'hit');
    const aborted = once(kbs, 'aborted');
    // Reboot while the server still holds the old session's /attest.
    await bootOn(g, rig);
    await aborted;
    const outcomes = await rig.sessions(2);
    assert.equal(outcomes[0]?.reason, 'SUPERSEDED');
    assert.equal(outcomes[1]?.outcome, 'success');
    // kbs-test serializes sessions: the new one ran, so the old one gave back the lock.
  });

  test('a guest that vanishes during a backend phase is seen at once, not after the server timeout', async (t) => {
    const { rig, kbs } = await startFaultyRig(t, { backend: { requestTimeoutMs: 60_000 } });
    kbs.inject('auth', { kind: 'hang' });
    const g = await raw(rig, t);
    g.send(NEGOTIATE);
    while (kbs.hits.auth === 0) await once(kbs, 'hit');
    g.destroy();
    const [o] = await rig.sessions(1);
    assert.equal(o?.outcome, 'aborted');
    assert.equal(o?.reason, 'GUEST_GONE');
    // Not seen at once, the session would have ended at the phase deadline with BACKEND_TIMEOUT.
    assert.equal(kbs.aborted, 0, 'the request itself is left to finish (or meet its deadline): its pooled connection is not torn down');
  });

  test('no session is logged a success unless its answer was written', async (t) => {
    const { rig, kbs } = await startFaultyRig(t);
    let release!: () => void;
    kbs.holdUntil('resource', new Promise<void>((r) => (release = r)));
    const g = await raw(rig, t);
    g.send(NEGOTIATE);
    const neg = await g.next();
    assert.ok(neg);
    g.send(attestationFor(rig.measurement, neg));
    while (kbs.hits.resource === 0) await once(kbs, 'hit');
    g.destroy();
    await g.closed;
    release();
    const [o] = await rig.sessions(1);
    assert.equal(o?.outcome, 'aborted');
    assert.equal(o?.reason, 'GUEST_GONE');
  });
});

describe('a negotiation that cannot complete is answered and the link stays', () => {
  test('server down at negotiation: the failure answer at once; server back: the same link boots', async (t) => {
    const { rig, kbs } = await startFaultyRig(t, { backend: { authRetryBudgetMs: 0 } });
    const g = await raw(rig, t);
    await kbs.stop();
    g.send(NEGOTIATE);
    assert.equal(await g.next(), FAILURE);
    await kbs.restart();
    await bootOn(g, rig);
    const outcomes = await rig.sessions(2);
    assert.equal(outcomes[0]?.reason, 'BACKEND_UNREACHABLE');
    assert.equal(outcomes[0]?.phase, 'negotiate');
  });

  test('a KBS restart during negotiation costs retries, not the boot', async (t) => {
    const { rig, kbs } = await startFaultyRig(t);
    await kbs.stop();
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    const booting = g.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    // The KBS comes back once the proxy has retried twice: the guest waits, it is not failed.
    let failedAuths = 0;
    rig.proxy.server.on('backend-request', (e: { endpoint: string; error?: string }) => {
      if (e.endpoint === 'POST /kbs/v0/auth' && e.error !== undefined) failedAuths++;
    });
    while (failedAuths < 2) await once(rig.proxy.server, 'backend-request');
    await kbs.restart();
    const r = await booting;
    assert.equal(r.secretMatches, true, r.error);
    const [o] = await rig.sessions(1);
    assert.equal(o?.outcome, 'success');
    assert.ok(
      (o?.backend ?? []).filter((e) => e.startsWith('POST /kbs/v0/auth')).length >= 3,
      `the failed attempts and the one that worked: ${o?.backend?.join(', ')}`,
    );
  });

  test('a frame of 200 KB in one guest field makes a short log line', async (t) => {
    const rig = await startRig(t);
    const g = await raw(rig, t);
    g.send(`{"version":[${JSON.stringify('x'.repeat(200_000))},1,0],"tee":"snp"}`);
    assert.equal(await g.next(), FAILURE);
    const [o] = await rig.sessions(1);
    assert.ok((o?.detail ?? '').length < 300, o?.detail);
    assert.match(o?.detail ?? '', /\(200002 characters\)/);
    const line = rig.logs.records.find((r) => r.reason === 'INVALID_MESSAGE');
    assert.ok(JSON.stringify(line).length < 2000);
  });
});

describe('every backend call has a deadline and its result is checked', () => {
  test("a plugin whose close() never returns: the fault is logged naming it, and the link's next boot is served", async (t) => {
    let closes = 0;
    const stuck = defineBackend({
      apiVersion: 2,
      name: 'stuck-close',
      create: () => ({
        openSession: (): BackendSession => ({
          negotiate: negotiateOk,
          attest: async () => ({ success: false }),
          close: () => {
            closes++;
            return new Promise<void>(() => undefined);
          },
        }),
        close: async () => undefined,
      }),
    });
    const rig = await startRig(t, { protocol: stuck, proxy: { backendCallTimeoutMs: 200, backendOptions: {} } });
    const g = await raw(rig, t);
    for (let i = 0; i < 2; i++) {
      g.send(NEGOTIATE);
      assert.ok(await g.next());
      g.send('{"tee":"snp"}');
      assert.equal(await g.next(), FAILURE);
    }
    await rig.sessions(2);
    assert.equal(closes, 2);
    const fault = rig.logs.records.find((r) => /backend session close failed/.test(String(r.msg)));
    assert.match(String(fault?.msg), /backend stuck-close: close\(\) did not return within 200 ms/);
  });

  test('a plugin returning a malformed negotiation or attestation result: PLUGIN_FAULT, and the guest gets the failure answer', async (t) => {
    let negotiations = 0;
    const sloppy = defineBackend({
      apiVersion: 2,
      name: 'sloppy',
      create: () => ({
        openSession: (): BackendSession => ({
          // First boot: a challenge that is a string. Later boots: fine, then a success without a secret.
          negotiate: async () => (++negotiations === 1 ? ({ challenge: 'abc', params: [] } as never) : negotiateOk()),
          attest: async () => ({ success: true, token: { tag: 'Jwt', value: 'x' } }),
          close() {},
        }),
        close: async () => undefined,
      }),
    });
    const rig = await startRig(t, { protocol: sloppy, proxy: { backendOptions: {} } });
    const g = await raw(rig, t);
    g.send(NEGOTIATE);
    assert.equal(await g.next(), FAILURE);
    g.send(NEGOTIATE);
    const neg = (await g.next()) ?? '';
    assert.ok(neg.startsWith('{"challenge"'));
    g.send(attestationFor(rig.measurement, neg));
    assert.equal(await g.next(), FAILURE);
    const outcomes = await rig.sessions(2);
    assert.deepEqual(
      outcomes.map((o) => o.reason),
      ['PLUGIN_FAULT', 'PLUGIN_FAULT'],
    );
    assert.match(outcomes[0]?.detail ?? '', /backend sloppy: returned a challenge that is not a Uint8Array/);
    assert.match(outcomes[1]?.detail ?? '', /backend sloppy: returned success:true without a `secret`/);
  });

  test('a plugin whose create() never returns stops the start with an error naming it', async (t) => {
    const hung = defineBackend({ apiVersion: 2, name: 'hung-create', create: () => new Promise<never>(() => undefined) });
    await assert.rejects(startRig(t, { protocol: hung, proxy: { backendCallTimeoutMs: 200, backendOptions: {} } }), {
      code: 'PLUGIN_FAULT',
      message: /backend hung-create: create\(\) did not return within 200 ms/,
    });
  });
});

describe('a VM that drops its link and reconnects is the same guest', () => {
  /** A frame header announcing 2^40 bytes: the proxy closes the link (FRAME_TOO_LARGE), and QEMU's reconnect-ms opens a new one. */
  const hugeHeader = () => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(1n << 40n);
    return b;
  };

  test('a serial VM keeps its session budget and its log bursts across reconnects: no fresh budget per link', async (t) => {
    // Two sessions at once, then one every 10 s: far more than the test takes.
    const rig = await startRig(t, { proxy: { guestLimits: { sessionsPerMinute: 6, sessionBurst: 2 } } });
    for (let link = 0; link < 2; link++) {
      const g = await raw(rig, t);
      g.send(NEGOTIATE);
      assert.ok((await g.next())?.startsWith('{"challenge"'));
      g.write(hugeHeader());
      await g.closed;
    }
    const third = await raw(rig, t);
    const paced = once(rig.proxy.server, 'paced') as Promise<[{ waitMs: number }]>;
    third.send(NEGOTIATE);
    const first = await Promise.race([paced, third.next().then(() => undefined)]);
    assert.ok(first !== undefined, "the third link's session waits for the budget instead of being served");
    assert.ok(first[0].waitMs > 0);
    assert.equal(rig.kbs.stats.auth, 2, 'one /auth per session the budget allowed');
    const closings = rig.logs.records.filter((r) => r.level === 40 && String(r.msg).startsWith('closing guest connection'));
    assert.equal(closings.length, 1, "the second link's identical fault is counted in the VM's burst, not logged again");
  });

  test('a VM whose every link ends in a framing fault is logged once per burst, however fast it reconnects', async (t) => {
    const rig = await startRig(t);
    for (let link = 0; link < 5; link++) {
      const g = await raw(rig, t);
      g.write(hugeHeader());
      await g.closed;
    }
    const closings = rig.logs.records.filter((r) => r.level === 40 && String(r.msg).startsWith('closing guest connection'));
    assert.equal(closings.length, 1, 'no session ever started, and still one line');
  });

  test('a reconnect waits for the server exchange its closed link left running: one exchange per VM at a time', async (t) => {
    const PHASE_MS = 1000;
    const started: number[] = [];
    let firstStarted: () => void = () => undefined;
    const negotiating = new Promise<void>((r) => {
      firstStarted = r;
    });
    // A plugin that ignores its abort signal: the proxy bounds its work by the phase deadline alone.
    const deaf = defineBackend({
      apiVersion: 2,
      name: 'deaf',
      create: () => ({
        openSession: (): BackendSession => ({
          negotiate: () => {
            started.push(performance.now());
            firstStarted();
            return started.length === 1 ? new Promise<never>(() => undefined) : negotiateOk();
          },
          attest: async () => ({ success: false }),
          close() {},
        }),
        close: async () => undefined,
      }),
    });
    const rig = await startRig(t, { protocol: deaf, proxy: { phaseTimeoutMs: PHASE_MS, backendOptions: {} } });
    const first = await raw(rig, t);
    first.send(NEGOTIATE);
    await negotiating;
    const gone = once(rig.proxy.server, 'disconnect');
    first.destroy();
    await gone;
    const second = await raw(rig, t);
    second.send(NEGOTIATE);
    assert.ok((await second.next())?.startsWith('{"challenge"'), 'the reconnected VM is served once the old exchange is over');
    assert.equal(started.length, 2);
    assert.ok(
      (started[1] as number) - (started[0] as number) >= PHASE_MS,
      "the second exchange began only when the first one's deadline passed",
    );
  });
});

describe('the guest simulator never hangs', () => {
  test('against a proxy that never answers, simulate-guest reports a timeout', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'silent.sock');
    const silent = createServer(() => undefined);
    silent.listen(path);
    await once(silent, 'listening');
    t.after(() => silent.close());
    const summary = await runGuestFleet({
      address: path,
      measurement: Buffer.alloc(48),
      sessions: 1,
      concurrency: 1,
      answerTimeoutMs: 300,
    });
    assert.equal(summary.failed, 1);
    assert.match(summary.errors[0] ?? '', /no NegotiationResponse from the proxy within 300 ms/);
  });
});
