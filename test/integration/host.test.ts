import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { finished, REPO_ROOT, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { FaultyKbs } from '../support/faulty-kbs.js';
import { startFaultyRig, startRig, startTestKbs, tempDir } from '../support/harness.js';
import { RawGuest } from '../support/raw-guest.js';

const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'tls');

describe('HTTPS to the KBS', () => {
  test('with --ca-cert the certificate verifies and the guest attests', async (t) => {
    const tls = { cert: await readFile(join(fixtures, 'server.pem'), 'utf8'), key: await readFile(join(fixtures, 'server.key'), 'utf8') };
    const rig = await startRig(t, { kbs: { tls }, backend: { caCert: join(fixtures, 'ca.pem') } });
    assert.match(rig.kbs.url, /^https:/);
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).secretMatches, true);
  });

  test('without the CA the certificate is refused (verification is on by default)', async (t) => {
    const tls = { cert: await readFile(join(fixtures, 'server.pem'), 'utf8'), key: await readFile(join(fixtures, 'server.key'), 'utf8') };
    const rig = await startRig(t, { kbs: { tls }, backend: { requestTimeoutMs: 2000 } });
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement })).ok, false);
    const [o] = await rig.sessions(1);
    assert.equal(o?.reason, 'BACKEND_UNREACHABLE');
    assert.match(o?.detail ?? '', /certificate/i);
    assert.deepEqual(
      rig.logs.records.filter((r) => /retrying/.test(String(r.msg))),
      [],
      'a certificate that does not verify is not retried: waiting cannot fix it',
    );
  });
});

describe('nothing secret reaches the log', () => {
  test('cookies, tokens, ciphertext and key material never appear at debug level', async (t) => {
    const { rig, kbs: faulty } = await startFaultyRig(t);
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    const r = await g.boot({ measurement: rig.measurement, expectSecret: rig.secret });
    assert.equal(r.secretMatches, true);
    const text = rig.logs.text();
    assert.ok(text.length > 0);
    for (const needle of [rig.secret.toString('hex'), rig.secret.toString('base64'), 'kbs-session-id=', 'eyJhbGciOiJub25l']) {
      assert.ok(!text.includes(needle), `log does not contain ${needle.slice(0, 16)}`);
    }
    const cookies = faulty.cookies;
    assert.equal(cookies.length, 1);
    for (const c of cookies) assert.ok(c.length > 10 && !text.includes(c), 'the session cookie value is not logged');
  });
});

describe('the socket file', () => {
  test('is created with the requested mode, never more open', async (t) => {
    const rig = await startRig(t, { proxy: { socketMode: 0o660 } });
    assert.equal((await stat(rig.unix)).mode & 0o777, 0o660);
  });

  test('is removed on close and a second proxy cannot take a live one', async (t) => {
    const rig = await startRig(t);
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const second = spawnCli(['--protocol', 'kbs', '--url', url, '--unix', rig.unix, '--force']);
    const r = await finished(second);
    assert.equal(r.code, 2, 'a configuration or host problem');
    assert.match(r.stderr, /another process is serving guests on this socket; stop it, or choose another path/);
    await rig.proxy.close();
    await assert.rejects(stat(rig.unix), { code: 'ENOENT' });
    void dir;
  });
});

describe('signals', () => {
  test('SIGTERM lets a session in flight finish, refuses new guests, removes the socket and exits 0', async (t) => {
    const measurement = randomBytes(48);
    const secret = randomBytes(16);
    const { url: upstream } = await startTestKbs(t, { measurement, secret });
    const faulty = new FaultyKbs(upstream);
    const url = await faulty.start();
    t.after(() => faulty.close());
    const dir = await tempDir(t);
    const unix = join(dir, 'p.sock');
    const proxy = spawnCli(['--protocol', 'kbs', '--url', url, '--unix', unix, '--log-level', 'debug']);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);

    // Hold the guest inside /attest: the fault forwards nothing until we release it.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    faulty.holdUntil('attest', gate);
    const guest = await SimulatedGuest.connect(unix);
    t.after(() => guest.close());
    const inAttest = new Promise<void>((resolve) => faulty.on('hit', (e: string) => e === 'attest' && resolve()));
    const booting = guest.boot({ measurement, expectSecret: secret });
    await inAttest;

    proxy.kill('SIGTERM');
    await waitForOutput(proxy, /stopping: no new guests/);
    // A new guest either cannot connect (socket gone, refused, reset) or is closed without an answer.
    const late = await RawGuest.connect(unix).then(
      async (g) => {
        g.send('{"version":[0,1,0],"tee":"snp"}');
        return (await g.next()) === null ? 'closed' : 'served';
      },
      (err: NodeJS.ErrnoException) => err.code ?? 'error',
    );
    assert.notEqual(late, 'served', 'a guest arriving after SIGTERM is not served');

    release();
    const r = await booting;
    assert.equal(r.secretMatches, true, 'the session in flight completed');
    const end = await finished(proxy);
    assert.equal(end.code, 0);
    await assert.rejects(stat(unix), { code: 'ENOENT' });
  });

  test('SIGHUP without a config file is logged and changes nothing: the proxy keeps serving', async (t) => {
    const measurement = randomBytes(48);
    const secret = randomBytes(16);
    const { url } = await startTestKbs(t, { measurement, secret });
    const dir = await tempDir(t);
    const unix = join(dir, 'hup.sock');
    const proxy = spawnCli(['--protocol', 'kbs', '--url', url, '--unix', unix, '--log-format', 'json']);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);
    proxy.kill('SIGHUP');
    await waitForOutput(proxy, /SIGHUP: no --config file, so nothing to reload/);
    const g = await SimulatedGuest.connect(unix);
    const r = await g.boot({ measurement, expectSecret: secret });
    g.close();
    assert.equal(r.secretMatches, true);
    proxy.kill('SIGTERM');
    assert.equal((await finished(proxy)).code, 0);
  });

  test('a second SIGTERM exits at once, without waiting for the session in flight', async (t) => {
    const measurement = randomBytes(48);
    const { url: upstream } = await startTestKbs(t, { measurement });
    const faulty = new FaultyKbs(upstream);
    const url = await faulty.start();
    t.after(() => faulty.close());
    faulty.holdUntil('attest', new Promise<void>(() => undefined)); // never released
    const dir = await tempDir(t);
    const unix = join(dir, 'twice.sock');
    const proxy = spawnCli(['--protocol', 'kbs', '--url', url, '--unix', unix, '--log-format', 'json', '--shutdown-grace-ms', '600000']);
    t.after(() => proxy.kill('SIGKILL'));
    await waitForOutput(proxy, /"msg":"aproxy ready"/);
    const guest = await SimulatedGuest.connect(unix);
    t.after(() => guest.close());
    const inAttest = new Promise<void>((resolve) => faulty.on('hit', (e: string) => e === 'attest' && resolve()));
    void guest.boot({ measurement });
    await inAttest;
    proxy.kill('SIGTERM');
    await waitForOutput(proxy, /stopping: no new guests/);
    proxy.kill('SIGTERM');
    const end = await finished(proxy);
    assert.equal(end.code, 1);
    assert.match(end.stdout, /second signal: exiting now/);
  });
});
