// `aproxy check` and start-up make one decision (service/preflight.ts): a
// configuration that check passes starts, one it refuses does not start,
// and both name the same problems, every one of them. Both run here as an
// operator runs them, as processes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { APROXY_BIN, finished, REPO_ROOT, runCli, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { tempDir } from '../support/harness.js';

const tls = join(REPO_ROOT, 'test', 'fixtures', 'tls');

/** What `aproxy check` calls problems: its stderr lines, prefix removed. */
function checkProblems(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('aproxy check: ') && !/problems?; the configuration would not start$/.test(l))
    .map((l) => l.slice('aproxy check: '.length))
    .sort();
}

/** What start-up refused with: one problem on its line, or several indented under "N problems:"; codes removed. */
function startProblems(stderr: string): string[] {
  const lines = stderr.trim().split('\n');
  const listed = /^aproxy: \d+ problems:$/.test(lines[0] ?? '')
    ? lines.slice(1).map((l) => l.trim())
    : [lines[0]?.slice('aproxy: '.length) ?? ''];
  return listed.map((l) => l.replace(/ \[[A-Z_]+\]$/, '')).sort();
}

describe('aproxy check and start-up decide alike', () => {
  const cases: Array<[string, (dir: string) => Promise<string[]>, number]> = [
    ['a configuration that starts', async (dir) => ['--unix', join(dir, 'vm.sock')], 0],
    ['a missing socket directory', async (dir) => ['--unix', join(dir, 'nowhere', 'vm.sock')], 1],
    [
      'a resource template whose {cid} a Unix listener cannot fill (once found only when a guest came)',
      async (dir) => ['--unix', join(dir, 'vm.sock'), '--resource', 'vtpm/{cid}'],
      1,
    ],
    ['a plugin that does not exist', async (dir) => ['--unix', join(dir, 'vm.sock'), '--protocol', join(dir, 'gone.js')], 1],
    [
      'a regular file where the socket goes',
      async (dir) => {
        await writeFile(join(dir, 'file'), 'x');
        return ['--unix', join(dir, 'file')];
      },
      1,
    ],
    [
      'several problems at once, every one named',
      async (dir) => {
        await writeFile(join(dir, 'file'), 'x');
        return ['--unix', join(dir, 'nowhere', 'a.sock'), '--unix', join(dir, 'file'), '--resource', 'vtpm/{cid}'];
      },
      4,
    ],
    ['a bad option value', async (dir) => ['--unix', join(dir, 'vm.sock'), '--max-frame-bytes', '0'], 1],
    ['a ca-cert file that holds a private key', async (dir) => ['--unix', join(dir, 'vm.sock'), '--ca-cert', join(tls, 'server.key')], 1],
    [
      'a ca-cert file of garbage',
      async (dir) => {
        await writeFile(join(dir, 'ca.pem'), 'not a certificate\n');
        return ['--unix', join(dir, 'vm.sock'), '--ca-cert', join(dir, 'ca.pem')];
      },
      1,
    ],
    [
      'a url that already ends in /kbs/v0 (every guest would get a 404)',
      async (dir) => ['--unix', join(dir, 'vm.sock'), '--url', 'http://kbs:8080/kbs/v0'],
      1,
    ],
  ];
  for (const [name, args, count] of cases) {
    test(`${name}: ${count === 0 ? 'check passes and it starts' : `both refuse it, naming the same ${count === 1 ? 'problem' : `${count} problems`}`}`, async (t) => {
      const dir = await tempDir(t);
      const own = await args(dir);
      const flags = [...(own.includes('--url') ? [] : ['--url', 'http://127.0.0.1:1']), ...own];
      const withProtocol = flags.includes('--protocol') ? flags : ['--protocol', 'kbs', ...flags];
      const check = await runCli(['check', ...withProtocol]);
      if (count === 0) {
        assert.equal(check.code, 0, check.stderr);
        const proxy = spawnCli([...withProtocol, '--log-format', 'json']);
        t.after(() => proxy.kill('SIGKILL'));
        const ready = await waitForOutput(proxy, /^.*"msg":"aproxy ready".*$/m);
        assert.match(
          ready[0],
          new RegExp(`"version":"\\d+\\.\\d+\\.\\d+[^"]*","node":"${process.version}"`),
          'the ready line says which build runs',
        );
        proxy.kill('SIGTERM');
        assert.equal((await finished(proxy)).code, 0);
        return;
      }
      const start = await runCli(withProtocol);
      assert.equal(check.code, 2, check.stdout);
      assert.equal(start.code, 2, start.stderr);
      const found = checkProblems(check.stderr);
      assert.equal(found.length, count, check.stderr);
      assert.deepEqual(startProblems(start.stderr), found, 'start-up names what check named');
    });
  }

  test('a socket group this user may not give the socket to: both refuse it, before anything is bound', {
    skip: process.getuid?.() === 0 ? false : 'needs root, to run the two as another user',
  }, async (t) => {
    const dir = await tempDir(t);
    await chmod(dir, 0o777);
    // nobody (65534) is in no group but its own; group 0 is root's.
    const nobody = { uid: 65534, gid: 65534 };
    if ((await runCli(['--version'], { user: nobody })).code !== 0) {
      t.skip(`nobody may not run ${process.execPath} ${APROXY_BIN} here`);
      return;
    }
    const args = ['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', join(dir, 'vm.sock'), '--socket-group', '0'];
    const check = await runCli(['check', ...args], { user: nobody });
    const start = await runCli(args, { user: nobody });
    assert.equal(check.code, 2, check.stdout + check.stderr);
    assert.equal(start.code, 2, start.stderr);
    assert.match(check.stderr, /cannot give the socket to group 0 \(option socket-group\): this user \(uid 65534\) is not in it/);
    assert.deepEqual(startProblems(start.stderr), checkProblems(check.stderr));
    await assert.rejects(stat(join(dir, 'vm.sock')), { code: 'ENOENT' }, 'nothing was bound');
  });

  test('the one difference: a socket another process serves is noted by check (the running proxy, before a reload) and refused by a start', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'vm.sock');
    const live = createServer().listen(path);
    await once(live, 'listening');
    t.after(() => live.close());
    const args = ['--protocol', 'kbs', '--url', 'http://127.0.0.1:1', '--unix', path];
    const check = await runCli(['check', ...args]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /accepts connections now: fine for a reload of the proxy serving it; a new start would meet SOCKET_IN_USE/);
    const start = await runCli(args);
    assert.equal(start.code, 2);
    assert.match(start.stderr, /another process is serving guests on this socket; stop it, or choose another path \[SOCKET_IN_USE\]$/m);
  });
});
