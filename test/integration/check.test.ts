import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT, runCli } from '../../scripts/processes.js';
import { TestKbs } from '../../src/testkit/test-kbs.js';
import { FaultyKbs } from '../support/faulty-kbs.js';
import { startTestKbs, tempDir } from '../support/harness.js';

const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'tls');

async function configFile(dir: string, json: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'aproxy.json');
  await writeFile(path, JSON.stringify(json));
  return path;
}

describe('aproxy check', () => {
  test('a good file: exit 0, what would run is printed, and nothing is bound or created', async (t) => {
    const dir = await tempDir(t);
    const config = await configFile(dir, {
      protocol: 'kbs',
      url: 'http://user:pw@kbs.example:8080',
      resource: 'vtpm/keys/{host_data}',
      'socket-mode': '0660',
      listeners: [
        { name: 'vm-a', unix: join(dir, 'vm-a.sock') },
        { name: 'lab', unix: join(dir, 'lab.sock'), resource: 'lab/{measurement}' },
      ],
      metrics: '127.0.0.1:9464',
      'session-burst': 3,
    });
    const r = await runCli(['check', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(
      r.stdout,
      /^listener vm-a: unix .*vm-a\.sock \(mode 0660\) → kbs http:\/\/kbs\.example:8080\/ resource vtpm\/keys\/\{host_data\}$/m,
    );
    assert.match(r.stdout, /^listener lab: .* resource lab\/\{measurement\}$/m);
    assert.match(r.stdout, /^backend kbs for vm-a: options checked$/m);
    assert.match(r.stdout, /^backend kbs for lab: options checked$/m);
    assert.match(r.stdout, /^guests: 3 sessions at once, then 30 a minute/m);
    assert.match(r.stdout, /^aproxy check: the configuration would start$/m);
    assert.doesNotMatch(r.stdout, /pw@/, 'credentials in the URL are not printed');
    await assert.rejects(stat(join(dir, 'vm-a.sock')), { code: 'ENOENT' });
  });

  test('each kind of bad configuration exits 2 with the problem named', async (t) => {
    const dir = await tempDir(t);
    const plugin = join(dir, 'broken-plugin.mjs');
    await writeFile(plugin, 'export const nothing = 1;\n');
    const taken = join(dir, 'taken');
    await writeFile(taken, 'a regular file');
    const base = { protocol: 'kbs', url: 'http://kbs:8080', unix: join(dir, 'ok.sock') };
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['an unknown key', { ...base, colour: 'red' }, /unknown key "colour"/],
      ['a bad value', { ...base, 'max-frame-bytes': 0 }, /option max-frame-bytes must be a positive integer, got 0/],
      [
        'a socket directory that does not exist',
        { ...base, unix: join(dir, 'nowhere', 'x.sock') },
        /the directory .*nowhere does not exist/,
      ],
      [
        'a regular file where the socket goes',
        { ...base, unix: taken },
        /already exists and is not a socket; remove it, or choose another path/,
      ],
      ['a bad resource template', { ...base, resource: 'vtpm/{hostdata}' }, /unknown field \{hostdata\}/],
      [
        'a CA file that is not there',
        { ...base, url: 'https://kbs:8080', 'ca-cert': join(dir, 'no-ca.pem') },
        /backend option caCert .*no-ca\.pem: ENOENT/,
      ],
      ['a plugin that exports no backend', { ...base, protocol: plugin }, /broken-plugin\.mjs: must export a backend definition/],
      ['two listeners on one address', { ...base, listeners: [{ unix: join(dir, 'ok.sock') }] }, /two listeners on unix:/],
      ['a listener name that cannot be a label', { ...base, listeners: [{ name: 'a b', vsock: 5000 }] }, /listener name "a b"/],
      ['a config file that is not JSON, with the line and column', {}, /\.json:2:3: not JSON \(/],
      // JSON.parse would let the last one win unseen.
      ['a config file that gives a key twice', {}, /\.json:3:3: not accepted as JSON \(duplicate field "url"\)/],
      ['a config file nested past any need', {}, /\.json:1:\d+: not accepted as JSON \(nesting too deep\)/],
      [
        'a resource template longer than any resource path',
        { ...base, resource: `a/b/${'c'.repeat(2000)}` },
        /2004 characters, more than the 1024/,
      ],
      [
        'a config file every user may write',
        { ...base },
        /writable by every user \(mode 0666\), and it names the code aproxy runs; chmod o-w it/,
      ],
    ];
    const texts: Record<string, string> = {
      'a config file that is not JSON, with the line and column': '{\n  protocol: kbs\n}\n',
      'a config file that gives a key twice': `{\n  "url": "http://a:1",\n  "url": "http://b:1",\n  "protocol": "kbs"\n}\n`,
      'a config file nested past any need': `{"protocol":"kbs","backend":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    };
    for (const [what, json, re] of cases) {
      const config = await configFile(dir, json);
      if (texts[what] !== undefined) await writeFile(config, texts[what]);
      if (what === 'a config file every user may write') await chmod(config, 0o666);
      const r = await runCli(['check', '--config', config]);
      assert.equal(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^aproxy check: .*${re.source}`, 'm'), what);
    }
  });

  test('relative paths in the config file are taken from its directory, whatever the working directory (systemd runs it in /)', async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'local.mjs'),
      "export default { apiVersion: 2, name: 'local', create: () => ({ openSession() { throw new Error('unused'); }, async close() {} }) };\n",
    );
    await copyFile(join(fixtures, 'ca.pem'), join(dir, 'kbs-ca.pem'));
    const config = await configFile(dir, {
      protocol: './local.mjs',
      unix: join(dir, 'a.sock'),
      listeners: [{ name: 'tls', unix: join(dir, 'b.sock'), protocol: 'kbs', url: 'https://kbs:8080', 'ca-cert': 'kbs-ca.pem' }],
    });
    const r = await runCli(['check', '--config', config], { cwd: '/' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^backend local for .*: options checked$/m);
    assert.match(r.stdout, /^backend kbs for tls: options checked$/m);
    // On the command line a relative path is the shell's: from the working directory.
    const fromFlag = await runCli(['check', '--protocol', './local.mjs', '--unix', join(dir, 'c.sock')], { cwd: dir });
    assert.equal(fromFlag.code, 0, fromFlag.stderr);
  });

  test('flags are checked as aproxy reads them, and win over the file', async (t) => {
    const dir = await tempDir(t);
    const config = await configFile(dir, { protocol: 'kbs', url: 'http://kbs:8080', unix: join(dir, 'a.sock') });
    const r = await runCli(['check', '--config', config, '--phase-timeout-ms', '-1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /option phase-timeout-ms must be a positive integer, got -1/);
    const ok = await runCli([
      'check',
      '--protocol',
      'kbs',
      '--url',
      'http://kbs:8080',
      '--vsock-max-per-cid',
      '2',
      '--unix',
      join(dir, 'b.sock'),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /vsock: 2 connections per CID/);
  });

  test("a socket another process serves is noted, not refused (a reload checks the running proxy's own sockets)", async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'live.sock');
    const server = createServer().listen(path);
    await once(server, 'listening');
    t.after(() => server.close());
    const r = await runCli(['check', '--protocol', 'kbs', '--url', 'http://kbs:8080', '--unix', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /accepts connections now: fine for a reload/);
  });

  test('a configuration with no listener is fine when sockets come from systemd', async (t) => {
    const dir = await tempDir(t);
    const r = await runCli(['check', '--config', await configFile(dir, { protocol: 'kbs', url: 'http://kbs:8080' })]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /listeners: none configured; the service manager must pass sockets/);
    assert.match(r.stdout, /^listener fd:3: fd 3 and on \(passed by systemd\) → kbs http:\/\/kbs:8080\/$/m);
    assert.match(r.stdout, /^backend kbs for fd:3: options checked$/m);
    // The backend's options are checked all the same.
    const bad = await runCli([
      'check',
      '--config',
      await configFile(dir, { protocol: 'kbs', url: 'http://kbs:8080', resource: 'a/{nope}' }),
    ]);
    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stderr, /unknown field \{nope\}/);
  });
});

describe('aproxy check --probe', () => {
  test('a KBS that is up: reachable, its status and time, and neither nonce nor cookie shown', async (t) => {
    const { url: upstream } = await startTestKbs(t);
    const faulty = new FaultyKbs(upstream);
    const url = await faulty.start();
    t.after(() => faulty.close());
    const dir = await tempDir(t);
    const r = await runCli(['check', '--probe', '--protocol', 'kbs', '--url', url, '--unix', join(dir, 'a.sock')]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^probe kbs http:\/\/127\.0\.0\.1:\d+\/: reachable; POST \/kbs\/v0\/auth: HTTP 200 in \d+\.\d ms$/m);
    assert.equal(faulty.cookies.length, 1, 'one /auth was made');
    for (const secret of [...faulty.cookies, 'kbs-session-id', 'nonce'])
      assert.ok(!`${r.stdout}${r.stderr}`.includes(secret), `output does not show ${secret.slice(0, 8)}…`);
  });

  test('a backend without a probe is named as not contacted, and that is no problem', async (t) => {
    const dir = await tempDir(t);
    const plugin = join(dir, 'no-probe.mjs');
    await writeFile(
      plugin,
      "export default { apiVersion: 2, name: 'no-probe', create: () => ({ openSession() { throw new Error('unused'); }, async close() {} }) };\n",
    );
    const r = await runCli(['check', '--probe', '--protocol', plugin, '--unix', join(dir, 'a.sock')]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^probe no-probe \(no url\): the backend has no probe; not contacted$/m);
  });

  test('a KBS that is down: exit 2, unreachable, named once, after one exchange (the probe does not retry)', async (t) => {
    const dir = await tempDir(t);
    const free = createServer().listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as { port: number }).port;
    free.close();
    const r = await runCli(['check', '--probe', '--protocol', 'kbs', '--url', `http://127.0.0.1:${port}`, '--unix', join(dir, 'a.sock')]);
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.stderr, /^aproxy check: probe kbs http:\/\/127\.0\.0\.1:\d+\/: POST \/kbs\/v0\/auth: connect ECONNREFUSED [\d.:]+$/m);
    assert.equal(r.stderr.match(/ECONNREFUSED/g)?.length, 1, 'the cause is named once');
  });

  test('a server whose error body holds terminal controls: shown escaped, no line forged; one that trickles its body: the probe ends at its deadline', async (t) => {
    const dir = await tempDir(t);
    const hostile = '\x1b]52;c;ZXZpbA==\x07\x1b[31mred\r\naproxy check: the configuration would start\u202eevil';
    const trickled: Array<ReturnType<typeof setInterval>> = [];
    const server = createHttpServer((req, res) => {
      if (req.url?.endsWith('/trickle/kbs/v0/auth')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{');
        trickled.push(setInterval(() => res.write(' '), 100));
        return;
      }
      // A KBS error body (kbs_types' ErrorInformation): its detail is what an operator is shown.
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'https://kbs/error', detail: hostile }));
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => {
      for (const i of trickled) clearInterval(i);
      server.closeAllConnections();
      server.close();
    });
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const r = await runCli(['check', '--probe', '--protocol', 'kbs', '--url', base, '--unix', join(dir, 'a.sock')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    // No raw control or bidi character reached either stream.
    for (const c of ['\x1b', '\x07', '\r', '\u202e']) assert.ok(!(r.stdout + r.stderr).includes(c), JSON.stringify(c));
    assert.match(r.stderr, /\\x1b\]52/);
    assert.doesNotMatch(r.stdout, /^aproxy check: the configuration would start$/m);
    const slow = await runCli([
      'check',
      '--probe',
      '--phase-timeout-ms',
      '1000',
      '--protocol',
      'kbs',
      '--url',
      `${base}/trickle`,
      '--unix',
      join(dir, 'b.sock'),
    ]);
    assert.equal(slow.code, 2, slow.stdout + slow.stderr);
    assert.match(slow.stderr, /within 1000 ms/);
  });

  test('HTTPS: verified with the right CA, refused as a TLS failure with a wrong one', async (t) => {
    const tls = { cert: await readFile(join(fixtures, 'server.pem'), 'utf8'), key: await readFile(join(fixtures, 'server.key'), 'utf8') };
    const kbs = new TestKbs({ measurement: Buffer.alloc(48), secret: Buffer.alloc(16), tls });
    const url = await kbs.start();
    t.after(() => kbs.close());
    const dir = await tempDir(t);
    const args = ['check', '--probe', '--protocol', 'kbs', '--url', url, '--unix', join(dir, 'a.sock')];
    const good = await runCli([...args, '--ca-cert', join(fixtures, 'ca.pem')]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /reachable; POST \/kbs\/v0\/auth: HTTP 200 in .* ms; TLS certificate verified$/m);
    for (const wrong of [[], ['--ca-cert', join(fixtures, 'server.pem')]]) {
      const bad = await runCli([...args, ...wrong]);
      assert.equal(bad.code, 2, bad.stdout);
      assert.match(bad.stderr, /^aproxy check: probe kbs https:\/\/.*: TLS failed \(.*(certificate|issuer).*\)$/m);
    }
  });
});
