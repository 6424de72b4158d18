import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { encode as encodeCbor, Tag } from 'cbor-x';
import { request } from 'undici';
import { finished, runCli, spawnCli, spawnSocketActivated, waitForOutput } from '../../scripts/processes.js';
import { buildSyntheticReport } from '../../src/protocol/index.js';
import { createLogger, formatLine } from '../../src/service/log.js';
import { startProxy } from '../../src/service/proxy.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { inspectToken } from '../../src/tools/inspect.js';
import { qemuSerialArgs } from '../../src/tools/qemu-args.js';
import { LogSink, startRig, startTestKbs, tempDir } from '../support/harness.js';
import { tryConnect } from '../support/raw-guest.js';

describe('Prometheus metrics', () => {
  test('a scrape after real sessions shows the counters moved', async (t) => {
    const rig = await startRig(t, { proxy: { metrics: '127.0.0.1:0' } });
    assert.ok(rig.proxy.metricsUrl);
    const g = await SimulatedGuest.connect(rig.unix);
    t.after(() => g.close());
    assert.equal((await g.boot({ measurement: rig.measurement, expectSecret: rig.secret })).ok, true);
    assert.equal((await g.boot({ measurement: randomBytes(48) })).attested, false);
    await rig.sessions(2);
    const res = await request(rig.proxy.metricsUrl);
    assert.equal(res.statusCode, 200);
    const text = await res.body.text();
    assert.match(text, /^aproxy_sessions_total\{outcome="success",reason="none",transport="unix",listener="[^"]+"\} 1$/m);
    assert.match(text, /^aproxy_sessions_total\{outcome="failure",reason="ATTESTATION_REJECTED",transport="unix",listener="[^"]+"\} 1$/m);
    assert.match(text, /^aproxy_backend_request_duration_seconds_count\{endpoint="POST \/kbs\/v0\/auth",status="200"\} 2$/m);
    assert.match(text, /^aproxy_backend_request_duration_seconds_count\{endpoint="POST \/kbs\/v0\/attest",status="401"\} 1$/m);
    assert.match(text, /^aproxy_phase_duration_seconds_count\{phase="attest"\} 2$/m);
    assert.match(text, /^aproxy_guest_connections\{transport="unix",listener="[^"]+"\} 1$/m);
    assert.match(text, /^aproxy_process_cpu_user_seconds_total /m);
    const notFound = await request(rig.proxy.metricsUrl.replace('/metrics', '/'));
    assert.equal(notFound.statusCode, 404);
    await notFound.body.dump();
  });
});

describe('systemd socket activation', () => {
  test('aproxy serves the listening socket passed as fd 3 and leaves the file to systemd', async (t) => {
    const dir = await tempDir(t);
    const unix = join(dir, 'activated.sock');
    const measurement = randomBytes(48);
    const secret = randomBytes(16);
    const { url } = await startTestKbs(t, { measurement, secret });
    const proc = spawnSocketActivated([{ unix }], ['--protocol', 'kbs', '--url', url, '--log-format', 'json']);
    t.after(() => proc.kill('SIGKILL'));
    await waitForOutput(proc, /"msg":"aproxy ready"/);
    assert.match(proc.output.stdout, /listening for guests on an inherited socket/);
    const g = await SimulatedGuest.connect(unix);
    const r = await g.boot({ measurement, expectSecret: secret });
    g.close();
    assert.equal(r.secretMatches, true);
    proc.kill('SIGTERM');
    assert.equal((await finished(proc)).code, 0);
    assert.ok((await stat(unix)).isSocket(), 'the socket file belongs to systemd and stays');
  });

  test('sockets are adopted by their FileDescriptorName=: a named listener applies its overrides, the others are named after their unit', async (t) => {
    const dir = await tempDir(t);
    const measurement = randomBytes(48);
    const resources = { 'vm/a/key': randomBytes(32), 'vm/other/key': randomBytes(32) };
    const { url } = await startTestKbs(t, { measurement, resources });
    const vmA = join(dir, 'vm-a.sock');
    const other = join(dir, 'other.sock');
    const config = join(dir, 'aproxy.json');
    await writeFile(
      config,
      JSON.stringify({ protocol: 'kbs', url, resource: 'vm/other/key', listeners: [{ systemd: 'vm-a', resource: 'vm/a/key' }] }),
    );
    const proc = spawnSocketActivated(
      [
        { unix: other, name: 'aproxy-serial.socket' },
        { unix: vmA, name: 'vm-a' },
      ],
      ['--config', config, '--log-format', 'json'],
    );
    t.after(() => proc.kill('SIGKILL'));
    await waitForOutput(proc, /"msg":"aproxy ready"/);
    for (const [path, resource, listener] of [
      [vmA, 'vm/a/key', 'vm-a'],
      [other, 'vm/other/key', 'aproxy-serial'],
    ] as const) {
      const g = await SimulatedGuest.connect(path);
      const r = await g.boot({ measurement, expectSecret: resources[resource] });
      g.close();
      assert.equal(r.secretMatches, true, `${listener} serves ${resource}`);
      await waitForOutput(
        proc,
        new RegExp(`"listener":"${listener}"[^\\n]*"outcome":"success"|"outcome":"success"[^\\n]*"listener":"${listener}"`),
      );
    }
    proc.kill('SIGTERM');
    assert.equal((await finished(proc)).code, 0);
  });

  test('a listener naming a socket systemd did not pass is refused at start, and aproxy check says it is adopted at start', async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    await writeFile(config, JSON.stringify({ protocol: 'kbs', url, listeners: [{ systemd: 'vm-b' }] }));
    const start = spawnSocketActivated([{ unix: join(dir, 'a.sock'), name: 'vm-a' }], ['--config', config]);
    const ended = await finished(start);
    assert.equal(ended.code, 2);
    assert.match(
      ended.stderr,
      /listener vm-b: systemd passed no socket named vm-b; a \.socket unit with FileDescriptorName=vm-b and Service=aproxy\.service passes it \[CONFIG\]/,
    );
    const check = await runCli(['check', '--config', config]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /listener vm-b: the socket systemd passes as vm-b/);
    assert.match(check.stdout, /adopted when systemd starts the service/);
  });
});

describe('configuration file', () => {
  test('keys are the long flag names and flags override them', async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    await writeFile(
      config,
      JSON.stringify({ protocol: 'kbs', url, unix: join(dir, 'from-file.sock'), 'log-format': 'json', 'log-level': 'debug' }),
    );
    const p = spawnCli(['--config', config, '--unix', join(dir, 'from-flag.sock')]);
    t.after(() => p.kill('SIGKILL'));
    await waitForOutput(p, /"msg":"aproxy ready"/);
    assert.ok((await stat(join(dir, 'from-flag.sock'))).isSocket());
    await assert.rejects(stat(join(dir, 'from-file.sock')));
    p.kill('SIGTERM');
    assert.equal((await finished(p)).code, 0);
  });

  test('a reload applies what it can and names the changed options only a restart applies', { timeout: 60_000 }, async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    const unix = join(dir, 'r.sock');
    const write = (extra: Record<string, unknown>) =>
      writeFile(config, JSON.stringify({ protocol: 'kbs', url, unix, 'log-format': 'json', ...extra }));
    await write({ 'session-burst': 10 });
    const p = spawnCli(['--config', config]);
    t.after(() => p.kill('SIGKILL'));
    await waitForOutput(p, /"msg":"aproxy ready"/);
    await write({ 'session-burst': 3, 'phase-timeout-ms': 5000 });
    p.kill('SIGHUP');
    await waitForOutput(p, /changed options that only a restart applies: session-burst"/);
    assert.match(p.output.stdout, /configuration reloaded: 0 listeners added, 0 removed, 1 changed/);
    p.kill('SIGTERM');
    assert.equal((await finished(p)).code, 0);
  });

  test("the file's backend object carries the backend's options", async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    const unix = join(dir, 'p.sock');
    await writeFile(config, JSON.stringify({ protocol: 'kbs', unix, 'log-format': 'json', backend: { url, requestTimeoutMs: 5000 } }));
    const p = spawnCli(['--config', config]);
    t.after(() => p.kill('SIGKILL'));
    await waitForOutput(p, /"msg":"aproxy ready"/);
    assert.ok((await stat(unix)).isSocket());
    p.kill('SIGTERM');
    assert.equal((await finished(p)).code, 0);
    await writeFile(config, JSON.stringify({ protocol: 'kbs', unix, backend: { url, requestTimeoutMs: 'soon' } }));
    const bad = await runCli(['--config', config]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /backend option requestTimeoutMs must be a positive integer of milliseconds, at most 2147483647 \(about 24\.8 days\), got soon/,
    );
  });

  test('an unknown key or a wrong type is named and exits 2', async (t) => {
    const dir = await tempDir(t);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ protocol: 'kbs', url: 'http://x', unix: '/tmp/x', maxFrameBytes: 5 }));
    const r = await runCli(['--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown key "maxFrameBytes"/);
    await writeFile(bad, JSON.stringify({ protocol: 'kbs', url: 'http://x', unix: '/tmp/x', 'max-frame-bytes': 'big' }));
    const r2 = await runCli(['--config', bad]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /config file .*bad\.json: option max-frame-bytes must be a positive integer, got "big"/);
  });
});

describe('QEMU wiring', () => {
  test('arguments put a reconnecting socket chardev on COM3 for new and old QEMU', () => {
    assert.deepEqual(qemuSerialArgs({ unix: '/run/aproxy.sock' }), [
      '-chardev',
      'socket,id=aproxy,path=/run/aproxy.sock,reconnect-ms=1000',
      '-device',
      'isa-serial,chardev=aproxy,index=2',
    ]);
    assert.equal(qemuSerialArgs({ unix: '/a,b', qemuVersion: '7.2.0', reconnectMs: 2500 })[1], 'socket,id=aproxy,path=/a,,b,reconnect=3');
    assert.equal(qemuSerialArgs({ unix: '/s', qemuVersion: '9.2' })[1], 'socket,id=aproxy,path=/s,reconnect-ms=1000');
  });

  test('qemu-args prints them shell-quoted', async () => {
    const r = await runCli(['qemu-args', '--unix', '/run/a b.sock', '--qemu-version', '8.2']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), "-chardev 'socket,id=aproxy,path=/run/a b.sock,reconnect=1' -device isa-serial,chardev=aproxy,index=2");
  });

  test('qemu-args names the flag that is wrong, once', async () => {
    const zero = await runCli(['qemu-args', '--unix', '/run/a.sock', '--reconnect-ms', '0']);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /^aproxy: --reconnect-ms must be a positive integer, got 0 \(see aproxy --help\)$/m);
    const version = await runCli(['qemu-args', '--unix', '/run/a.sock', '--qemu-version', 'nine']);
    assert.equal(version.code, 2);
    assert.match(version.stderr, /^aproxy: --qemu-version: QEMU version must look like 9\.2/m);
  });

  test('a client that reconnects like QEMU is served again by a restarted proxy', async (t) => {
    const dir = await tempDir(t);
    const unix = join(dir, 'p.sock');
    const measurement = randomBytes(48);
    const secret = randomBytes(16);
    const { url } = await startTestKbs(t, { measurement, secret });
    const log = createLogger({ level: 'silent', destination: new LogSink() });
    const first = await startProxy({ protocol: 'kbs', backendOptions: { url }, unix, log });
    const g1 = await SimulatedGuest.connect(unix);
    assert.equal((await g1.boot({ measurement, expectSecret: secret })).ok, true);
    await first.close();
    // QEMU with reconnect-ms keeps retrying the path; emulate that loop.
    const reconnecting = (async () => {
      while (!(await tryConnect(unix))) await new Promise((r) => setTimeout(r, 20));
    })();
    const second = await startProxy({ protocol: 'kbs', backendOptions: { url }, unix, log });
    t.after(() => second.close());
    await reconnecting;
    const g2 = await SimulatedGuest.connect(unix);
    t.after(() => g2.close());
    assert.equal((await g2.boot({ measurement, expectSecret: secret })).ok, true);
    g1.close();
  });
});

describe('inspection commands', () => {
  test('inspect-report prints the measurement, report data and decoded policy', async (t) => {
    const dir = await tempDir(t);
    const measurement = Buffer.alloc(48, 0xab);
    const reportData = Buffer.alloc(64, 0x01);
    const file = join(dir, 'report.bin');
    await writeFile(file, buildSyntheticReport({ measurement, reportData, policy: 0x30000n | (1n << 19n) }));
    const r = await runCli(['inspect-report', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^measurement +${measurement.toString('hex')}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^report_data +${reportData.toString('hex')}$`, 'm'));
    assert.match(r.stdout, /policy +0xb0000 \(ABI ≥ 0\.0; SMT allowed, reserved \(must be 1\), debugging allowed\)/);
    assert.match(r.stdout, /^vmpl +0$/m);
    await writeFile(file, 'short');
    const bad = await runCli(['inspect-report', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected an SEV-SNP report/);
  });

  test("inspect-token - and inspect-report - read standard input, as --help says; a claim's bidi override is shown escaped", async () => {
    const claims = Buffer.from(JSON.stringify({ sub: '\u202eevil' })).toString('base64url');
    const t = await runCli(['inspect-token', '-'], { stdin: `eyJhbGciOiJub25lIn0.${claims}.\n` });
    assert.equal(t.code, 0, t.stderr);
    assert.ok(!t.stdout.includes('\u202e'), 'no raw override');
    assert.match(t.stdout, /"sub": "\\u202eevil"/);
    const r = await runCli(['inspect-report', '-'], {
      stdin: Buffer.from(buildSyntheticReport({ measurement: Buffer.alloc(48, 7), reportData: Buffer.alloc(64) })).toString('hex'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /0707070707/);
  });

  test('inspect-token decodes a JWT and shows expiry', async () => {
    const r = await runCli(['inspect-token', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdnNtLWdvbGRlbiIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJl']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^JWT \(not verified\)/);
    assert.match(r.stdout, /"sub": "svsm-golden"/);
    assert.match(r.stdout, /2023-11-14T22:13:20\.000Z \(expired\)/);
  });

  test('a CWT (COSE_Sign1 in CBOR) decodes to named claims', () => {
    const claims = new Map<number, unknown>([
      [1, 'kbs.example'],
      [4, 4102444800],
    ]);
    const cose = new Tag([encodeCbor(new Map([[1, -7]])), {}, encodeCbor(claims), Buffer.alloc(64, 7)], 18);
    const d = inspectToken(Buffer.from(encodeCbor(cose)).toString('base64url'), Date.UTC(2026, 0, 1));
    assert.equal(d.kind, 'CWT');
    assert.equal((d.claims as Record<string, unknown>).iss, 'kbs.example');
    assert.match(String((d.claims as Record<string, unknown>).exp), /2100-01-01T00:00:00\.000Z \(valid\)/);
    assert.equal(d.signatureBytes, 64);
  });
  test('a CWT with a 90 KiB bignum claim is shown as hex, not converted to a decimal number; small bignums stay numbers', () => {
    const huge = Buffer.alloc(90 * 1024, 0xab);
    const claims = new Map<number, unknown>([
      [1, 'kbs.example'],
      [100, new Tag(huge, 2)],
      [101, new Tag(Buffer.from([1, 0]), 2)],
      [102, new Tag(Buffer.from([1, 0]), 3)],
    ]);
    const cose = new Tag([encodeCbor(new Map([[1, -7]])), {}, encodeCbor(claims), Buffer.alloc(64, 7)], 18);
    const d = inspectToken(Buffer.from(encodeCbor(cose)).toString('base64url'));
    const c = d.claims as Record<string, unknown>;
    assert.equal(c['100'], `0x${huge.toString('hex')} (bignum, ${huge.length} bytes)`);
    assert.equal(c['101'], 256n);
    assert.equal(c['102'], -257n);
  });

  test('inspect-token refuses a token over 256 KiB before decoding it, naming the limit', async () => {
    const r = await runCli(['inspect-token', '-'], { stdin: 'A'.repeat(300 * 1024) });
    assert.equal(r.code, 1, 'what cannot be decoded exits 1, as a token that is not base64 does');
    assert.match(r.stderr, /the token is 307200 characters; tokens over 262144 are not decoded/);
  });
});

describe('log format', () => {
  test('pretty lines are one event each with the connection and session up front', () => {
    const line = formatLine(
      JSON.stringify({
        level: 40,
        time: Date.UTC(2026, 0, 1, 12, 0, 0),
        pid: 1,
        conn: 'c3',
        session: 2,
        msg: 'session failure: x',
        reason: 'ATTESTATION_REJECTED',
        backend: ['POST /kbs/v0/auth 200 1ms'],
      }),
    );
    assert.equal(line, '12:00:00.000 WARN  c3#2 session failure: x  reason=ATTESTATION_REJECTED backend=["POST /kbs/v0/auth 200 1ms"]');
  });
});
