// The vsock scenarios. Runs only inside the QEMU guest that test/vsock/
// vsock.test.ts starts (real AF_VSOCK over the kernel's loopback transport);
// every guest here connects to CID 1, the VM's own loopback.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { finished, runCli, spawnCli, spawnSocketActivated, waitForOutput } from '../../scripts/processes.js';
import { VMADDR_CID_LOCAL, vsockSupport } from '../../src/frontend/vsock-native.js';
import type { ProxyConfig } from '../../src/service/config/types.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { type Rig, startRig, startTestKbs, tempDir } from '../support/harness.js';
import { RawGuest } from '../support/raw-guest.js';

let nextPort = 2000;

async function vsockRig(
  t: Parameters<typeof startRig>[0],
  proxy: Partial<ProxyConfig> = {},
): Promise<Rig & { port: number; address: { cid: number; port: number } }> {
  const port = nextPort++;
  const rig = await startRig(t, { proxy: { vsock: port, ...proxy } });
  return Object.assign(rig, { port, address: { cid: VMADDR_CID_LOCAL, port } });
}

describe('vsock transport (inside a QEMU guest, loopback transport)', {
  skip: process.env.APROXY_IN_VM === undefined ? 'runs only inside the vsock test VM' : false,
}, () => {
  test('12 guests attest at once over vsock, each decrypting its own secret; the log names transport and CID', async (t) => {
    const rig = await vsockRig(t);
    const guests = await Promise.all(Array.from({ length: 12 }, () => SimulatedGuest.connect(rig.address)));
    t.after(() => {
      for (const g of guests) g.close();
    });
    const results = await Promise.all(guests.map((g) => g.boot({ measurement: rig.measurement, expectSecret: rig.secret })));
    assert.deepEqual(
      results.map((r) => r.error ?? (r.secretMatches ? 'ok' : 'mismatch')),
      Array(12).fill('ok'),
    );
    const outcomes = await rig.sessions(12);
    assert.ok(outcomes.every((o) => o.transport === 'vsock' && o.cid === VMADDR_CID_LOCAL && o.outcome === 'success'));
    const line = rig.logs.records.find((r) => r.msg === 'session success');
    assert.equal(line?.transport, 'vsock');
    assert.equal(line?.cid, 1);
  });

  test('one vsock connection carries several boots', async (t) => {
    const rig = await vsockRig(t);
    const g = await SimulatedGuest.connect(rig.address);
    t.after(() => g.close());
    for (let i = 0; i < 3; i++) assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
    assert.equal(rig.proxy.server.connectionCount, 1);
  });

  test('a guest that resets mid-session is a guest leaving: session aborted, no fault logged, the next guest is served', async (t) => {
    const rig = await vsockRig(t);
    const raw = await RawGuest.connect(rig.address);
    raw.send('{"version":[0,1,0],"tee":"snp"}');
    assert.ok(await raw.next(), 'a NegotiationResponse');
    raw.socket.resetAndDestroy();
    const [outcome] = await rig.sessions(1);
    assert.equal(outcome?.outcome, 'aborted');
    assert.equal(outcome?.reason, 'GUEST_GONE');
    assert.ok(!rig.logs.records.some((r) => typeof r.msg === 'string' && r.msg.startsWith('closing guest connection')), rig.logs.text());
    const g = await SimulatedGuest.connect(rig.address);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
  });

  test('after its answer a guest may keep the connection open idle; the proxy never closes it', async (t) => {
    const rig = await vsockRig(t);
    const idle = await SimulatedGuest.connect(rig.address);
    t.after(() => idle.close());
    let closed = false;
    (idle as unknown as { socket: import('node:net').Socket }).socket.once('close', () => (closed = true));
    assert.equal((await idle.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
    // Meanwhile other guests come and go.
    for (let i = 0; i < 3; i++) {
      const g = await SimulatedGuest.connect(rig.address);
      assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
      g.close();
    }
    assert.equal(closed, false, 'the idle guest still has its connection');
    assert.equal((await idle.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
  });

  test('one process serves a serial (Unix) guest and a vsock guest together', async (t) => {
    const rig = await vsockRig(t);
    const overVsock = await SimulatedGuest.connect(rig.address);
    const overUnix = await SimulatedGuest.connect(rig.unix);
    t.after(() => {
      overVsock.close();
      overUnix.close();
    });
    const [a, b] = await Promise.all([overVsock, overUnix].map((g) => g.boot({ measurement: rig.measurement, expectSecret: rig.secret })));
    assert.equal(a?.ok, true);
    assert.equal(b?.ok, true);
    const outcomes = await rig.sessions(2);
    assert.deepEqual(outcomes.map((o) => o.transport).sort(), ['unix', 'vsock']);
  });

  test('an oversized frame header closes that vsock connection before anything is buffered', async (t) => {
    const rig = await vsockRig(t);
    const raw = await RawGuest.connect(rig.address);
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(1n << 40n);
    raw.write(header);
    await raw.closed;
    assert.ok(rig.logs.records.some((r) => (r.err as { code?: string } | undefined)?.code === 'FRAME_TOO_LARGE'));
  });

  test('a guest over its connection cap is refused, logged once per burst, counted, while a guest within it is served', async (t) => {
    // CID 1 is trusted by default; here it stands in for an ordinary guest.
    const rig = await vsockRig(t, { guestLimits: { maxPerCid: 2, trustedCids: new Set() }, metrics: '127.0.0.1:0' });
    const served = await SimulatedGuest.connect(rig.address);
    t.after(() => served.close());
    assert.equal((await served.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
    const second = await RawGuest.connect(rig.address);
    t.after(() => second.destroy());
    const flood = await Promise.all(Array.from({ length: 5 }, () => RawGuest.connect(rig.address)));
    await Promise.all(flood.map((g) => g.closed));
    const warnings = rig.logs.records.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('refusing a guest over its limit'));
    assert.equal(warnings.length, 1, 'one line for the burst');
    assert.equal(warnings[0]?.reason, 'per_cid');
    assert.equal(
      (await served.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok,
      true,
      'the guest within its cap is still served',
    );
    const metrics = await (await fetch(rig.proxy.metricsUrl ?? '')).text();
    assert.match(metrics, /^aproxy_guest_refusals_total\{transport="vsock",listener="[^"]+",reason="per_cid"\} 5$/m);
    assert.match(metrics, /^aproxy_guest_connections\{transport="vsock",listener="[^"]+"\} 2$/m);
  });

  test('a CID past its session budget is paced across its connections, not closed, and counted; a Unix guest has its own budget', async (t) => {
    // CID 1 is trusted by default; here it stands in for an ordinary guest.
    // A token every 10 s: the two boots of the burst take far less even in a loaded TCG guest, where one a second did not.
    const rig = await vsockRig(t, {
      guestLimits: { sessionsPerMinute: 6, sessionBurst: 2, trustedCids: new Set() },
      metrics: '127.0.0.1:0',
    });
    const boot = async (address: typeof rig.address | string) => {
      const g = await SimulatedGuest.connect(address);
      t.after(() => g.close());
      return g.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    };
    assert.equal((await boot(rig.address)).ok, true);
    assert.equal((await boot(rig.address)).ok, true);
    const paced = once(rig.proxy.server, 'paced') as Promise<[{ waitMs: number; transport: string }]>;
    const third = boot(rig.address);
    // Whichever comes first: a boot served unpaced fails here instead of leaving the wait for an event hanging.
    const first = await Promise.race([paced, third.then(() => undefined)]);
    assert.ok(first !== undefined, 'the third boot was paced');
    const [event] = first;
    assert.equal(event.transport, 'vsock');
    assert.ok(event.waitMs > 0 && event.waitMs <= 10_000, 'reconnecting did not reset the budget: the third boot waits for it');
    assert.equal((await third).ok, true, 'paced, then served');
    assert.equal((await boot(rig.unix)).ok, true, 'a Unix link has its own budget');
    const metrics = await (await fetch(rig.proxy.metricsUrl ?? '')).text();
    assert.match(metrics, /^aproxy_guest_sessions_paced_total\{transport="vsock",listener="[^"]+"\} [1-9]/m);
    assert.equal(
      rig.logs.records.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('guest is over its session budget')).length,
      1,
    );
  });

  test('socket activation: systemd passes a vsock and a Unix listening socket; aproxy serves both and SIGTERM drains', async (t) => {
    const dir = await tempDir(t);
    const { url, measurement, secret } = await startTestKbs(t);
    const port = nextPort++;
    const unix = `${dir}/activated.sock`;
    // What systemd does for ListenStream=vsock::PORT and ListenStream=PATH: listening sockets at fd 3 and 4.
    const proc = spawnSocketActivated([{ vsockPort: port }, { unix }], ['--protocol', 'kbs', '--url', url, '--log-format', 'json']);
    t.after(() => proc.kill('SIGKILL'));
    await waitForOutput(proc, /"msg":"aproxy ready"/);
    assert.match(proc.output.stdout, /"transport":"vsock","port":\d+,"fd":3/);
    assert.match(proc.output.stdout, /"fd":4,"msg":"listening for guests on an inherited socket"/);
    const viaVsock = await SimulatedGuest.connect({ cid: VMADDR_CID_LOCAL, port });
    const viaUnix = await SimulatedGuest.connect(unix);
    assert.equal((await viaVsock.boot({ measurement, expectSecret: secret })).ok, true);
    assert.equal((await viaUnix.boot({ measurement, expectSecret: secret })).ok, true);
    const idleClosed = once((viaVsock as unknown as { socket: import('node:net').Socket }).socket, 'close');
    proc.kill('SIGTERM');
    await idleClosed;
    assert.equal((await finished(proc)).code, 0);
    viaUnix.close();
  });

  test('aproxy --vsock on the command line, and simulate-guest --vsock CID:PORT', async (t) => {
    const { url, measurement, secret } = await startTestKbs(t);
    const port = nextPort++;
    const proxy = spawnCli(['--protocol', 'kbs', '--url', url, '--vsock', String(port), '--log-format', 'json']);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);
    assert.match(proxy.output.stdout, new RegExp(`"transport":"vsock","port":${port}`));
    const r = await runCli([
      'simulate-guest',
      '--vsock',
      `1:${port}`,
      '--measurement',
      measurement.toString('hex'),
      '--expect-secret',
      secret.toString('hex'),
      '--sessions',
      '4',
      '--concurrency',
      '2',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /4\/4 sessions succeeded/);
    proxy.kill('SIGTERM');
    assert.equal((await finished(proxy)).code, 0);
  });

  test('a vsock port already bound is a clear start-up error', async (t) => {
    const rig = await vsockRig(t);
    const r = await runCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--vsock', String(rig.port)]);
    assert.equal(r.code, 2, 'a configuration or host problem');
    assert.match(r.stderr, /vsock: port \d+ is already bound.* \[VSOCK_UNAVAILABLE\]/);
  });

  test('the addon and the TCP handle are available in this Node', () => {
    assert.doesNotThrow(() => vsockSupport());
  });
});
