// One proxy for every VM on a host: per-guest resource paths from attested
// data, many listeners in one process, and live reload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { finished, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { createLogger } from '../../src/service/log.js';
import { startProxy } from '../../src/service/proxy.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { TestKbs } from '../../src/testkit/test-kbs.js';
import { FaultyKbs } from '../support/faulty-kbs.js';
import { LogSink, startRig, tempDir } from '../support/harness.js';
import { RawGuest } from '../support/raw-guest.js';

const hostData = (byte: number) => Buffer.alloc(32, byte);

describe('resource path per guest, from attested data', () => {
  test('two guests with different host_data get two different secrets through one proxy; the KBS checks the tag against the evidence', async (t) => {
    const a = { hostData: hostData(0xa1), secret: randomBytes(32) };
    const b = { hostData: hostData(0xb2), secret: randomBytes(32) };
    const rig = await startRig(t, {
      kbs: {
        resources: { [`vtpm/keys/${a.hostData.toString('hex')}`]: a.secret, [`vtpm/keys/${b.hostData.toString('hex')}`]: b.secret },
        requireHostDataTag: true,
      },
      backend: { resource: 'vtpm/keys/{host_data}' },
    });
    const guests = await Promise.all([SimulatedGuest.connect(rig.unix), SimulatedGuest.connect(rig.unix)]);
    t.after(() => {
      for (const g of guests) g.close();
    });
    const [ra, rb] = await Promise.all([
      guests[0]?.boot({ measurement: rig.measurement, hostData: a.hostData, expectSecret: a.secret }),
      guests[1]?.boot({ measurement: rig.measurement, hostData: b.hostData, expectSecret: b.secret }),
    ]);
    assert.equal(ra?.secretMatches, true, ra?.error);
    assert.equal(rb?.secretMatches, true, rb?.error);
    const outcomes = await rig.sessions(2);
    assert.deepEqual(outcomes.map((o) => o.notes?.resource).sort(), [`vtpm/keys/${'a1'.repeat(32)}`, `vtpm/keys/${'b2'.repeat(32)}`]);
    const line = rig.logs.records.find((r) => r.msg === 'session success');
    assert.match(JSON.stringify(line?.notes), /"resource":"vtpm\/keys\/[0-9a-f]{64}"/);
  });

  test("a proxy that asks for another guest's resource is refused by the KBS policy, not by trust in the host", async (t) => {
    const victim = hostData(0x77);
    const rig = await startRig(t, {
      kbs: { resources: { [`vtpm/keys/${victim.toString('hex')}`]: randomBytes(32) }, requireHostDataTag: true },
      // A compromised host rewrites the path to the victim's; the guest's report still carries its own host_data.
      backend: { resource: `vtpm/keys/${victim.toString('hex')}` },
    });
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    const r = await g.boot({ measurement: rig.measurement, hostData: hostData(0x01) });
    assert.equal(r.attested, false);
    const [o] = await rig.sessions(1);
    assert.equal(o?.reason, 'ATTESTATION_REJECTED');
    assert.match(o?.detail ?? '', /HTTP 401: policy: .* is not this guest's/);
  });

  test("a template field a listener's guests cannot fill is refused at start, naming the option and the listener", async (t) => {
    await assert.rejects(startRig(t, { backend: { resource: 'vtpm/{cid}' } }), {
      code: 'CONFIG',
      message:
        /backend option resource "vtpm\/\{cid\}" uses \{cid\}, which only vsock guests have; listener .*proxy\.sock serves unix guests/,
    });
    await assert.rejects(startRig(t, { backend: { resource: 'vtpm/{listener}' } }), {
      code: 'CONFIG',
      message: /uses \{listener\}, but listener ".*proxy\.sock" has no name that can go into a path: give it a name/,
    });
  });
});

describe('several listeners in one process', () => {
  test('200 listeners, one per VM, guests on several at once, each listener named in its session line', async (t) => {
    const dir = await tempDir(t);
    const measurement = randomBytes(48);
    const secret = randomBytes(32);
    const kbs = new TestKbs({ measurement, secret });
    const url = await kbs.start();
    t.after(() => kbs.close());
    const logs = new LogSink();
    const listeners = Array.from({ length: 200 }, (_, i) => ({ name: `vm-${i}`, unix: join(dir, `vm-${i}.sock`) }));
    const proxy = await startProxy({
      protocol: 'kbs',
      backendOptions: { url },
      listeners,
      log: createLogger({ level: 'info', destination: logs }),
    });
    t.after(() => proxy.close());
    assert.equal(proxy.listenerNames().length, 200);
    const picked = [0, 17, 63, 99, 150, 199];
    const outcomes: Array<{ listener: string }> = [];
    proxy.server.on('session', (o: { listener: string }) => outcomes.push(o));
    const guests = await Promise.all(picked.map((i) => SimulatedGuest.connect(join(dir, `vm-${i}.sock`))));
    t.after(() => {
      for (const g of guests) g.close();
    });
    const results = await Promise.all(guests.map((g) => g.boot({ measurement, expectSecret: secret })));
    assert.ok(
      results.every((r) => r.secretMatches),
      JSON.stringify(results.map((r) => r.error)),
    );
    assert.deepEqual(outcomes.map((o) => o.listener).sort(), picked.map((i) => `vm-${i}`).sort());
    assert.equal(logs.records.filter((r) => r.msg === 'session success' && typeof r.listener === 'string').length, picked.length);
  });

  test('a listener overrides the resource (and the backend for it) while the others keep the proxy-wide one', async (t) => {
    const dir = await tempDir(t);
    const measurement = randomBytes(48);
    const common = randomBytes(32);
    const special = randomBytes(32);
    const kbs = new TestKbs({ measurement, secret: common, resources: { 'special/key/one': special } });
    const url = await kbs.start();
    t.after(() => kbs.close());
    const proxy = await startProxy({
      protocol: 'kbs',
      backendOptions: { url },
      listeners: [
        { name: 'plain', unix: join(dir, 'plain.sock') },
        { name: 'special', unix: join(dir, 'special.sock'), backendOptions: { resource: 'special/key/one' } },
      ],
      log: createLogger({ level: 'silent' }),
    });
    t.after(() => proxy.close());
    const [p, s] = await Promise.all([SimulatedGuest.connect(join(dir, 'plain.sock')), SimulatedGuest.connect(join(dir, 'special.sock'))]);
    t.after(() => {
      for (const g of [p, s]) g.close();
    });
    assert.equal((await p.boot({ measurement, expectSecret: common })).secretMatches, true);
    assert.equal((await s.boot({ measurement, expectSecret: special })).secretMatches, true);
  });

  test('a config file listener with an unknown key or no address is named and refused (exit 2)', async (t) => {
    const dir = await tempDir(t);
    const config = join(dir, 'c.json');
    await writeFile(
      config,
      JSON.stringify({ protocol: 'kbs', url: 'http://127.0.0.1:1', listeners: [{ name: 'a', unix: join(dir, 'a.sock'), colour: 'red' }] }),
    );
    const bad = spawnCli(['--config', config]);
    const r = await finished(bad);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /listeners\[0\]: unknown key "colour"/);
    await writeFile(config, JSON.stringify({ protocol: 'kbs', url: 'http://127.0.0.1:1', listeners: [{ name: 'a' }] }));
    const r2 = await finished(spawnCli(['--config', config]));
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /exactly one of "unix", "vsock" or "systemd"/);
  });
});

describe('live reload on SIGHUP', () => {
  test('a reload that renames a listener renames its open links: their next session logs, counts and fetches under the new name', async (t) => {
    const secret = randomBytes(32);
    const rig = await startRig(t, { kbs: { resources: { 'vtpm/vm-renamed': secret } } });
    const connected = once(rig.proxy.server, 'connection');
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    await connected;
    const r = await rig.proxy.reload({
      protocol: 'kbs',
      backendOptions: { url: rig.kbs.url, resource: 'vtpm/{listener}' },
      listeners: [{ name: 'vm-renamed', unix: rig.unix }],
      log: rig.log,
    });
    // The same socket, named now, and its secret chosen by that name.
    assert.deepEqual(r.changed, ['vm-renamed']);
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: secret })).secretMatches, true, 'it fetched vtpm/vm-renamed');
    const [outcome] = await rig.sessions(1);
    assert.equal(outcome?.listener, 'vm-renamed');
    assert.deepEqual(
      rig.proxy.server.connectionCounts().map((c) => [c.listener, c.count]),
      [['vm-renamed', 1]],
    );
  });

  test('a reload that lowers max-frame-bytes reaches a link already open, from its next frame', async (t) => {
    const rig = await startRig(t);
    const connected = once(rig.proxy.server, 'connection');
    const g = await RawGuest.connect(rig.unix);
    t.after(() => g.destroy());
    await connected;
    await rig.proxy.reload({ protocol: 'kbs', backendOptions: { url: rig.kbs.url }, unix: rig.unix, maxFrameBytes: 64, log: rig.log });
    g.send(JSON.stringify({ version: ['0.1.0'], padding: 'x'.repeat(100) }));
    assert.equal(await g.next(), null, 'the link is closed: the frame is over the new limit');
    const closing = rig.logs.records.find((r) => String(r.msg).startsWith('closing guest connection'));
    assert.equal((closing?.err as { code?: string } | undefined)?.code, 'FRAME_TOO_LARGE');
    assert.match(String(closing?.msg), /64/);
  });

  test('a reload that changes socket-mode applies it to the socket file, and a link already open keeps working', async (t) => {
    const rig = await startRig(t, { proxy: { socketMode: 0o666 } });
    assert.equal((await stat(rig.unix)).mode & 0o777, 0o666);
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    const r = await rig.proxy.reload({
      protocol: 'kbs',
      backendOptions: { url: rig.kbs.url },
      unix: rig.unix,
      socketMode: 0o600,
      log: rig.log,
    });
    assert.deepEqual(r.changed, [rig.unix]);
    assert.equal((await stat(rig.unix)).mode & 0o777, 0o600);
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).secretMatches, true);
  });

  test('a reload meets the checks a start does, for what it adds, every problem named, and the running listeners keep serving', async (t) => {
    const rig = await startRig(t);
    const dir = await tempDir(t);
    const base = { protocol: 'kbs', backendOptions: { url: rig.kbs.url }, unix: rig.unix, log: rig.log } as const;
    await assert.rejects(
      rig.proxy.reload({
        ...base,
        listeners: [
          { name: 'nowhere', unix: join(dir, 'no-such-directory', 'vm.sock') },
          { name: 'percid', unix: join(dir, 'vm.sock'), backendOptions: { resource: 'vtpm/{cid}' } },
        ],
      }),
      (err: Error & { code?: string }) =>
        err.code === 'SOCKET_PATH' &&
        /^2 problems:\n/.test(err.message) &&
        /the directory .* does not exist/.test(err.message) &&
        /uses \{cid\}/.test(err.message),
    );
    assert.deepEqual(rig.proxy.listenerNames(), [rig.unix], 'nothing was added');
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).secretMatches, true);
  });

  test('adds, removes and changes listeners; a session in flight on a removed one completes; a broken config is refused whole', async (t) => {
    const dir = await tempDir(t);
    const measurement = randomBytes(48);
    const secret = randomBytes(32);
    const secretB = randomBytes(32);
    const upstream = new TestKbs({ measurement, secret, resources: { 'other/key/b': secretB } });
    const kbsUrl = await upstream.start();
    t.after(() => upstream.close());
    const faulty = new FaultyKbs(kbsUrl);
    const url = await faulty.start();
    t.after(() => faulty.close());
    const sock = (n: string) => join(dir, `${n}.sock`);
    const config = join(dir, 'aproxy.json');
    const write = (listeners: unknown[]) =>
      writeFile(config, JSON.stringify({ protocol: 'kbs', url, 'log-format': 'json', metrics: '127.0.0.1:0', listeners }));
    await write([
      { name: 'a', unix: sock('a') },
      { name: 'b', unix: sock('b') },
    ]);
    const proxy = spawnCli(['--config', config]);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);
    const metricsUrl = (await waitForOutput(proxy, /http:\/\/127\.0\.0\.1:\d+\/metrics/))[0].trim();

    // A session in flight on b, held inside /attest.
    let release!: () => void;
    faulty.holdUntil('attest', new Promise<void>((r) => (release = r)));
    const onB = await SimulatedGuest.connect(sock('b'));
    t.after(() => onB.close());
    const inFlight = onB.boot({ measurement, expectSecret: secret });
    while (faulty.hits.attest === 0) await once(faulty, 'hit');

    // Reload: b removed, c added, a changed (its resource).
    await write([
      { name: 'a', unix: sock('a'), resource: 'other/key/b' },
      { name: 'c', unix: sock('c') },
    ]);
    proxy.kill('SIGHUP');
    await waitForOutput(proxy, /configuration reloaded: 1 listeners added, 1 removed, 1 changed/);
    await assert.rejects(stat(sock('b')), { code: 'ENOENT' }, "the removed listener's socket file is gone");
    release();
    assert.equal((await inFlight).secretMatches, true, 'the session in flight on the removed listener completed');

    const onA = await SimulatedGuest.connect(sock('a'));
    const onC = await SimulatedGuest.connect(sock('c'));
    t.after(() => {
      for (const g of [onA, onC]) g.close();
    });
    assert.equal((await onA.boot({ measurement, expectSecret: secretB })).secretMatches, true, "a's new sessions use its new resource");
    assert.equal((await onC.boot({ measurement, expectSecret: secret })).secretMatches, true);

    // A broken config: refused whole, one line, the running one stays.
    await writeFile(config, '{"protocol": "kbs", "listeners": [{"name": "a", "unix": 5}]}');
    proxy.kill('SIGHUP');
    await waitForOutput(
      proxy,
      /configuration reload refused, the running configuration stays: .*listeners\[0\]: option unix must be a non-empty string/,
    );
    assert.equal((await onA.boot({ measurement, expectSecret: secretB })).secretMatches, true);
    const text = await (await fetch(metricsUrl)).text();
    assert.match(text, /^aproxy_config_reloads_total\{result="applied"\} 1$/m);
    assert.match(text, /^aproxy_config_reloads_total\{result="refused"\} 1$/m);
    assert.match(text, /^aproxy_sessions_total\{outcome="success",reason="none",transport="unix",listener="b"\} 1$/m);
    proxy.kill('SIGTERM');
    assert.equal((await finished(proxy)).code, 0);
  });
});
