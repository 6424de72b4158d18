import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { APROXY_BIN, REPO_ROOT } from '../../scripts/processes.js';
import { tempDir } from '../support/harness.js';

const units = join(REPO_ROOT, 'contrib', 'systemd');
const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();

describe('the shipped systemd units', { skip: analyze === '' ? 'systemd-analyze not installed (apt-get install systemd)' : false }, () => {
  test('pass systemd-analyze verify as written (with ExecStart pointed at this checkout)', async (t) => {
    const dir = await tempDir(t);
    const names = (await readdir(units)).filter((n) => /\.(service|socket)$/.test(n));
    for (const n of names) await copyFile(join(units, n), join(dir, n));
    // verify checks that the executable exists; the units name the installed path.
    const service = join(dir, 'aproxy.service');
    await writeFile(service, (await readFile(service, 'utf8')).replaceAll('/usr/local/bin/aproxy', APROXY_BIN));
    const r = spawnSync(analyze, ['verify', '--man=no', ...names], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
  });

  test('each serial socket is reachable by the QEMU group: directory traversable, socket 0660, and /etc/aproxy may be absent', async () => {
    const socket = await readFile(join(units, 'aproxy-serial@.socket'), 'utf8');
    assert.match(socket, /^FileDescriptorName=%i$/m);
    assert.match(socket, /^Service=aproxy\.service$/m);
    assert.match(socket, /^SocketMode=0660$/m);
    const dirMode = parseInt(/^DirectoryMode=(\d+)$/m.exec(socket)?.[1] ?? '0', 8);
    assert.equal(dirMode & 0o001, 0o001, 'others (the QEMU group is not the directory group) may traverse');
    const service = await readFile(join(units, 'aproxy.service'), 'utf8');
    assert.match(service, /^ReadOnlyPaths=-\/etc\/aproxy$/m);
    assert.match(service, /^RestrictAddressFamilies=.*AF_VSOCK/m);
    // V8 allocates protection keys where the CPU has them (EPYC, and QEMU's -cpu max): @system-service alone kills node with SIGSYS.
    assert.match(service, /^SystemCallFilter=@system-service @pkey$/m);
    assert.match(service, /^SystemCallErrorNumber=EPERM$/m);
    assert.match(await readFile(join(units, 'aproxy-vsock.socket'), 'utf8'), /^ListenStream=vsock::1995\nFileDescriptorName=vsock$/m);
  });
});

describe('the shipped service configuration', () => {
  test('a reload checks the file before the running proxy is signalled, with the arguments it runs with', async () => {
    const service = await readFile(join(units, 'aproxy.service'), 'utf8');
    const start = /^ExecStart=\S+ (.*)$/m.exec(service)?.[1];
    const reloads = [...service.matchAll(/^ExecReload=(.*)$/gm)].map((m) => m[1]);
    assert.deepEqual(reloads, [`/usr/local/bin/aproxy check ${start}`, '/bin/kill -HUP $MAINPID']);
  });

  test('the shipped config file passes aproxy check (sockets come from systemd)', async (t) => {
    // Its CA bundle is the operator's to install; the test's stands in for it.
    const dir = await tempDir(t);
    const shipped = JSON.parse(await readFile(join(units, 'aproxy.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(shipped['ca-cert'], '/etc/aproxy/kbs-ca.pem');
    await writeFile(
      join(dir, 'aproxy.json'),
      JSON.stringify({ ...shipped, 'ca-cert': join(REPO_ROOT, 'test', 'fixtures', 'tls', 'ca.pem') }),
    );
    const r = spawnSync(process.execPath, [APROXY_BIN, 'check', '--config', join(dir, 'aproxy.json')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /listeners: none configured; the service manager must pass sockets/);
  });
});
