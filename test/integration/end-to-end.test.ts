import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { runGuestFleet, SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startRig } from '../support/harness.js';

describe('end to end over a real Unix socket and real HTTP', () => {
  test('a guest attests through the kbs backend and decrypts exactly the released secret', async (t) => {
    const rig = await startRig(t);
    const guest = await SimulatedGuest.connect(rig.unix);
    t.after(() => guest.close());
    const r = await guest.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    assert.equal(r.error, undefined);
    assert.equal(r.ok, true);
    assert.equal(r.secretMatches, true);
    const [outcome] = await rig.sessions(1);
    assert.equal(outcome?.outcome, 'success');
    assert.equal(outcome?.measurement, rig.measurement.toString('hex'));
    assert.equal(outcome?.tee, 'snp');
    assert.equal(outcome?.reportVersion, 3);
  });

  test('20 concurrent guests each decrypt their own secret', async (t) => {
    const rig = await startRig(t);
    const guests = await Promise.all(Array.from({ length: 20 }, () => SimulatedGuest.connect(rig.unix)));
    t.after(() => {
      for (const g of guests) g.close();
    });
    const results = await Promise.all(guests.map((g) => g.boot({ measurement: rig.measurement, expectSecret: rig.secret })));
    for (const r of results) {
      assert.equal(r.error, undefined);
      assert.equal(r.secretMatches, true);
    }
    assert.equal(rig.kbs.stats.released, 20);
    assert.equal(rig.kbs.stats.refused, 0);
    assert.ok(rig.kbs.stats.maxOpen > 1, 'the kbs backend lets guests attest concurrently');
    await rig.sessions(20);
    assert.equal(rig.proxy.server.connectionCount, 20);
  });

  test('two sessions in sequence on one connection (a guest reboot) both succeed', async (t) => {
    const rig = await startRig(t);
    const guest = await SimulatedGuest.connect(rig.unix);
    t.after(() => guest.close());
    const first = await guest.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    const second = await guest.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    assert.equal(first.ok, true);
    assert.equal(second.ok, true);
    const outcomes = await rig.sessions(2);
    assert.deepEqual(
      outcomes.map((o) => [o.connectionId, o.session, o.outcome]),
      [
        ['c1', 1, 'success'],
        ['c1', 2, 'success'],
      ],
    );
  });

  test('a wrong measurement gets success:false and the next guest still succeeds', async (t) => {
    const rig = await startRig(t);
    const bad = await SimulatedGuest.connect(rig.unix);
    t.after(() => bad.close());
    const refused = await bad.boot({ measurement: randomBytes(48) });
    assert.equal(refused.ok, false);
    assert.equal(refused.attested, false);
    const [outcome] = await rig.sessions(1);
    assert.equal(outcome?.outcome, 'failure');
    assert.equal(outcome?.reason, 'ATTESTATION_REJECTED');
    assert.match(outcome?.detail ?? '', /HTTP 401.*measurement/);
    assert.ok(rig.kbsLines.some((l) => /refused POST \/kbs\/v0\/attest: measurement .* is not the expected/.test(l)));

    // The same link boots again, and a different guest too.
    const again = await bad.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    assert.equal(again.ok, true);
    const good = await SimulatedGuest.connect(rig.unix);
    t.after(() => good.close());
    assert.equal((await good.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
  });

  test('the kbs-test backend runs concurrent guests one whole session at a time', async (t) => {
    const rig = await startRig(t, { protocol: 'kbs-test' });
    const guests = await Promise.all(Array.from({ length: 6 }, () => SimulatedGuest.connect(rig.unix)));
    t.after(() => {
      for (const g of guests) g.close();
    });
    const results = await Promise.all(guests.map((g) => g.boot({ measurement: rig.measurement, expectSecret: rig.secret })));
    assert.ok(results.every((r) => r.ok));
    assert.equal(rig.kbs.stats.auth, 6);
    assert.equal(rig.kbs.stats.maxOpen, 1, 'the KBS never saw two sessions open at once');
  });

  test('the fleet runner reports every session', async (t) => {
    const rig = await startRig(t);
    const s = await runGuestFleet({
      address: rig.unix,
      measurement: rig.measurement,
      expectSecret: rig.secret,
      sessions: 12,
      concurrency: 4,
    });
    assert.equal(s.succeeded, 12);
    assert.deepEqual(s.errors, []);
  });
});
