import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { request } from 'undici';
import { spawnCli, waitForOutput } from '../../scripts/processes.js';
import { encodeStd, parseAttestationResponse, parseNegotiationResponse } from '../../src/protocol/index.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { type Rig, startRig, startTestKbs, tempDir } from '../support/harness.js';
import { attestationFor, FAILURE, NEGOTIATE, RawGuest, rawGuestFor, tryConnect } from '../support/raw-guest.js';
import { vectorText } from '../support/vectors.js';

const rawGuest = (rig: Rig, t: TestContext) => rawGuestFor(rig.unix, t);

async function assertGoodGuestSucceeds(rig: Rig, t: TestContext): Promise<void> {
  const g = await SimulatedGuest.connect(rig.unix);
  t.after(() => g.close());
  const r = await g.boot({ measurement: rig.measurement, expectSecret: rig.secret });
  assert.equal(r.error, undefined);
  assert.equal(r.secretMatches, true);
}

describe('bad negotiation requests get the failure answer, the problem logged, and the link serves the next boot', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['malformed JSON', '{"version":[0,1,0],"tee":', 'INVALID_JSON', /invalid JSON at byte \d+/],
    ['an empty payload', '', 'INVALID_JSON', /empty payload/],
    ['version with the wrong type', '{"version":"0.1.0","tee":"snp"}', 'INVALID_MESSAGE', /NegotiationRequest: version:/],
    ['a missing tee', '{"version":[0,1,0]}', 'INVALID_MESSAGE', /tee: missing field/],
    ['an unknown tee', '{"version":[0,1,0],"tee":"foo"}', 'INVALID_MESSAGE', /tee: Invalid option/],
    [
      'a tee the KBS backend does not handle',
      '{"version":[0,1,0],"tee":"tdx"}',
      'UNSUPPORTED_TEE',
      /tee "tdx" is not supported by the kbs backend/,
    ],
    ['an unsupported version', '{"version":[1,0,0],"tee":"snp"}', 'UNSUPPORTED_VERSION', /version 1\.0\.0 is not supported/],
    [
      'an attestation request first',
      vectorText('attestation-request.json'),
      'OUT_OF_ORDER',
      /attestation request received before any negotiation/,
    ],
  ];
  for (const [name, payload, code, detail] of cases) {
    test(`${name}: ${code}`, async (t) => {
      const rig = await startRig(t);
      const g = await rawGuest(rig, t);
      g.send(payload);
      assert.equal(await g.next(), FAILURE, 'one frame SVSM rejects at once, instead of silence');
      const [o] = await rig.sessions(1);
      assert.equal(o?.outcome, 'failure');
      assert.equal(o?.phase, 'negotiate');
      assert.equal(o?.reason, code);
      assert.match(o?.detail ?? '', detail);
      const logged = rig.logs.records.find((r) => r.conn === o?.connectionId && r.reason === code);
      assert.ok(logged, 'the log line names the connection and the code');
      // The same link: the next boot works.
      g.send(NEGOTIATE);
      const neg = (await g.next()) ?? '';
      assert.ok(neg.startsWith('{"challenge"'));
      g.send(attestationFor(rig.measurement, neg));
      assert.equal(parseAttestationResponse((await g.next()) ?? '').success, true);
    });
  }
});

describe('bad attestation requests get success:false and the link stays usable', () => {
  const cases: Array<[string, (j: Record<string, unknown>) => void, string, RegExp]> = [
    [
      'invalid base64 in the report',
      (j) => ((j.evidence as { Snp: { report: string } }).Snp.report = 'AAEC-AAA'),
      'INVALID_MESSAGE',
      /evidence\.Snp\.report/,
    ],
    ['a missing challenge', (j) => delete j.challenge, 'INVALID_MESSAGE', /challenge: missing field/],
    [
      'a challenge other than the negotiated one',
      (j) => (j.challenge = encodeStd(new Uint8Array(32))),
      'CHALLENGE_MISMATCH',
      /different from the negotiated/,
    ],
    ['a tee other than the negotiated one', (j) => (j.tee = 'sev'), 'OUT_OF_ORDER', /negotiated "snp"/],
    [
      'a report of the wrong size',
      (j) => ((j.evidence as { Snp: { report: string } }).Snp.report = encodeStd(new Uint8Array(100))),
      'ATTESTATION_REJECTED',
      /HTTP 400/,
    ],
  ];
  for (const [name, spoil, code, detail] of cases) {
    test(`${name}: ${code}`, async (t) => {
      const rig = await startRig(t);
      const g = await rawGuest(rig, t);
      g.send(NEGOTIATE);
      const neg = await g.next();
      assert.ok(neg);
      g.send(attestationFor(rig.measurement, neg, spoil));
      assert.equal(await g.next(), FAILURE);
      const [o] = await rig.sessions(1);
      assert.equal(o?.outcome, 'failure');
      assert.equal(o?.reason, code);
      assert.match(o?.detail ?? '', detail);
      // Same link, next boot: a full good session.
      g.send(NEGOTIATE);
      const neg2 = await g.next();
      assert.ok(neg2);
      g.send(attestationFor(rig.measurement, neg2));
      const resp = parseAttestationResponse((await g.next()) ?? '');
      assert.equal(resp.success, true);
    });
  }
});

describe('framing abuse and slow or vanished peers', () => {
  test('a header announcing 2^40 bytes closes the connection before buffering anything', async (t) => {
    const rig = await startRig(t);
    const g = await rawGuest(rig, t);
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(2n ** 40n);
    const before = process.memoryUsage().arrayBuffers;
    g.write(header);
    assert.equal(await g.next(), null);
    assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024, 'nothing near the announced size was allocated');
    assert.ok(
      rig.logs.records.some((r) => /FRAME_TOO_LARGE/.test(JSON.stringify(r))),
      'the log says FRAME_TOO_LARGE',
    );
    await assertGoodGuestSucceeds(rig, t);
  });

  test('a truncated frame followed by close is logged and cleaned up', async (t) => {
    const rig = await startRig(t);
    const g = await rawGuest(rig, t);
    const closedByProxy = new Promise((r) => rig.proxy.server.once('disconnect', r));
    g.write(Buffer.concat([Buffer.from([100, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"version"')]));
    g.end();
    await closedByProxy;
    assert.ok(rig.logs.records.some((r) => /FRAME_TRUNCATED/.test(JSON.stringify(r)) && /10 bytes|18 bytes/.test(String(r.msg))));
    assert.equal(rig.proxy.server.connectionCount, 0);
    await assertGoodGuestSucceeds(rig, t);
  });

  test('a frame that stops half way hits the per-frame deadline', async (t) => {
    const rig = await startRig(t, { proxy: { frameTimeoutMs: 150 } });
    const g = await rawGuest(rig, t);
    g.write(Buffer.from([31, 0, 0]));
    assert.equal(await g.next(), null, 'closed by the deadline');
    assert.ok(rig.logs.records.some((r) => /FRAME_TIMEOUT/.test(JSON.stringify(r)) && /within 150 ms/.test(String(r.msg))));
    assert.equal(rig.proxy.server.connectionCount, 0);
  });

  test('a frame trickling in one byte at a time is served', async (t) => {
    const rig = await startRig(t);
    const g = await rawGuest(rig, t);
    const frame = Buffer.concat([Buffer.from([NEGOTIATE.length, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(NEGOTIATE)]);
    for (const b of frame) {
      g.write(Uint8Array.of(b));
      await new Promise((r) => setImmediate(r));
    }
    const neg = await g.next();
    assert.ok(neg && parseNegotiationResponse(neg).challenge.length === 32);
  });

  test('idle connections (never speaking, or long after a boot) hold no timers', async (t) => {
    const rig = await startRig(t);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    let accepted = 0;
    const allAccepted = new Promise<void>((resolve) => rig.proxy.server.on('connection', () => ++accepted === 50 && resolve()));
    const idle = await Promise.all(Array.from({ length: 50 }, () => rawGuest(rig, t)));
    await allAccepted;
    assert.equal(rig.proxy.server.connectionCount, 50);
    assert.equal(timers(), before, 'no deadline runs for a link that is between frames');
    for (const g of idle) g.destroy();
    await assertGoodGuestSucceeds(rig, t);
  });

  test('a guest that vanishes after negotiation leaves no session behind', async (t) => {
    const rig = await startRig(t, { protocol: 'kbs-test' });
    const g = await rawGuest(rig, t);
    g.send(NEGOTIATE);
    assert.ok(await g.next());
    g.destroy();
    const [o] = await rig.sessions(1);
    assert.equal(o?.outcome, 'aborted');
    assert.equal(o?.reason, 'GUEST_GONE');
    // kbs-test serializes sessions: this only succeeds if the vanished one released its turn.
    await assertGoodGuestSucceeds(rig, t);
  });
});

describe('connections before the session code has loaded', () => {
  test('a guest that connects and leaves at once, in a fresh proxy process, is not counted forever', async (t) => {
    const dir = await tempDir(t);
    const unix = join(dir, 'early.sock');
    const { url } = await startTestKbs(t);
    const proxy = spawnCli([
      '--protocol',
      'kbs',
      '--url',
      url,
      '--unix',
      unix,
      '--metrics',
      '127.0.0.1:0',
      '--log-format',
      'json',
      '--log-level',
      'debug',
    ]);
    t.after(() => proxy.kill('SIGKILL'));
    // Like a start-up probe: connect the moment the socket exists, and leave.
    while (!(await tryConnect(unix))) await new Promise((r) => setImmediate(r));
    const metrics = (await waitForOutput(proxy, /http:\/\/127\.0\.0\.1:\d+\/metrics/))[0].trim();
    const g = await RawGuest.connect(unix);
    g.send('{"version":[0,1,0],"tee":"snp"}');
    assert.ok(await g.next());
    g.destroy();
    await waitForOutput(proxy, /"conn":"c2".*"msg":"guest disconnected"/);
    const text = await (await request(metrics)).body.text();
    assert.match(text, /^aproxy_guest_connections\{transport="unix",listener="[^"]+"\} 0$/m);
  });
});
