import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame } from '../../src/protocol/index.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startRig } from '../support/harness.js';
import { FAILURE, RawGuest } from '../support/raw-guest.js';

describe('the frontend under arbitrary input (property-based)', () => {
  test('arbitrary byte streams never crash the proxy and never leave a connection behind', async (t) => {
    const rig = await startRig(t, { proxy: { maxFrameBytes: 4096, frameTimeoutMs: 2000 } });
    const faults: unknown[] = [];
    const onFault = (e: unknown) => faults.push(e);
    process.on('unhandledRejection', onFault);
    process.on('uncaughtException', onFault);
    t.after(() => {
      process.off('unhandledRejection', onFault);
      process.off('uncaughtException', onFault);
    });
    const rssBefore = process.memoryUsage().rss;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constant(encodeFrame('{"version":[0,1,0],"tee":"snp"}'))), { maxLength: 8 }),
        async (chunks) => {
          const g = await RawGuest.connect(rig.unix);
          for (const c of chunks) g.write(c);
          g.end();
          await g.closed;
        },
      ),
      { numRuns: 150 },
    );
    // Every connection is gone once the proxy noticed the ends.
    while (rig.proxy.server.connectionCount > 0) await new Promise((r) => rig.proxy.server.once('disconnect', r));
    assert.deepEqual(faults, []);
    assert.ok(process.memoryUsage().rss - rssBefore < 128 * 1024 * 1024, 'memory stays bounded');
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).secretMatches, true);
  });

  test('arbitrary JSON as a negotiation request gets a negotiation answer or the failure answer, never silence', async (t) => {
    const rig = await startRig(t);
    const g = await RawGuest.connect(rig.unix);
    t.after(() => g.destroy());
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        g.send(JSON.stringify(value) ?? 'null');
        const answer = await g.next();
        assert.ok(
          answer === FAILURE || /^\{"challenge":"[A-Za-z0-9+/=]*","params":\["EcPublicKeyBytes","Challenge"\]\}$/.test(answer ?? ''),
          String(answer),
        );
      }),
      { numRuns: 100 },
    );
  });

  test('arbitrary JSON as an attestation request always gets exactly the failure response', async (t) => {
    const rig = await startRig(t);
    const g = await RawGuest.connect(rig.unix);
    t.after(() => g.destroy());
    await fc.assert(
      // An object with `version` is a new NegotiationRequest (a reboot), not an attestation.
      fc.asyncProperty(
        fc.jsonValue().filter((v) => !(typeof v === 'object' && v !== null && !Array.isArray(v) && 'version' in v)),
        async (value) => {
          g.send('{"version":[0,1,0],"tee":"snp"}');
          assert.ok(await g.next());
          g.send(JSON.stringify(value) ?? 'null');
          assert.equal(await g.next(), FAILURE);
        },
      ),
      { numRuns: 100 },
    );
    assert.equal(rig.outcomes.filter((o) => o.outcome === 'failure').length, 100);
  });
});
