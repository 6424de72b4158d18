import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isListening, prepareSocketPath } from '../../src/frontend/socket-path.js';
import { UnixListener } from '../../src/frontend/unix-listener.js';
import { tempDir } from '../support/harness.js';

/** A crashed proxy: a process binds the socket and is killed with SIGKILL, leaving the file. */
async function leaveStaleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('socket path preparation', () => {
  test('a free path is fine with or without --force', async (t) => {
    const dir = await tempDir(t);
    await assert.doesNotReject(prepareSocketPath(join(dir, 'a'), false));
    await assert.doesNotReject(prepareSocketPath(join(dir, 'a'), true));
    await assert.rejects(stat(join(dir, 'a')), { code: 'ENOENT' }, 'nothing is created or left behind');
  });

  test('a stale socket is an error without --force and removed with it', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'stale.sock');
    await leaveStaleSocket(path);
    assert.ok((await stat(path)).isSocket());
    await assert.rejects(prepareSocketPath(path, false), {
      code: 'SOCKET_IN_USE',
      message: /is a stale socket \(nothing accepts on it\); set option force to replace it/,
    });
    await prepareSocketPath(path, true);
    await assert.rejects(stat(path), { code: 'ENOENT' });
  });

  test('--force refuses a socket that a live process listens on', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'live.sock');
    const s = createServer();
    s.listen(path);
    await once(s, 'listening');
    t.after(() => s.close());
    await assert.rejects(prepareSocketPath(path, true), {
      code: 'SOCKET_IN_USE',
      message: /another process is serving guests on this socket/,
    });
    assert.ok((await stat(path)).isSocket());
  });

  test('--force refuses a regular file and a directory', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'f'), 'x');
    await mkdir(join(dir, 'd'));
    await assert.rejects(prepareSocketPath(join(dir, 'f'), true), { code: 'SOCKET_PATH', message: /regular file/ });
    await assert.rejects(prepareSocketPath(join(dir, 'd'), true), { code: 'SOCKET_PATH', message: /directory/ });
  });

  test('a socket that cannot be probed (not ECONNREFUSED) is not removed by --force', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'dgram.sock');
    // A datagram socket: connecting a stream to it fails with EPROTOTYPE, not ECONNREFUSED.
    const child = spawn(
      'python3',
      [
        '-c',
        `import socket,time; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(${JSON.stringify(path)}); print('up', flush=True); time.sleep(60)`,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    t.after(() => child.kill('SIGKILL'));
    await once(child.stdout, 'data');
    await assert.rejects(prepareSocketPath(path, true), {
      code: 'SOCKET_PATH',
      message: /removes only a socket that refuses connections; connecting gave E/,
    });
    assert.ok((await stat(path)).isSocket());
  });

  test('two proxies started on one path at once: exactly one binds, the other fails and replaces nothing', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'race.sock');
    const a = new UnixListener({ path, name: 'vm', force: false, mode: 0o600 });
    const b = new UnixListener({ path, name: 'vm', force: false, mode: 0o600 });
    t.after(() => Promise.all([a.close(), b.close()]));
    const results = await Promise.allSettled([a.listen(), b.listen()]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.equal((failed.reason as { code?: string }).code, 'SOCKET_IN_USE');
    assert.ok(await isListening(path), 'the winner still serves at the path');
  });

  test('a directory so deep that the temporary socket path would be cut is refused before binding', async (t) => {
    const base = await tempDir(t);
    // The final path fits (under 107 bytes); the private temporary one beside it does not.
    const deep = join(base, 'd'.repeat(100 - base.length - 4));
    await mkdir(deep);
    const path = join(deep, 's');
    assert.ok(Buffer.byteLength(path) <= 107);
    await assert.rejects(new UnixListener({ path, name: 'vm', force: false, mode: 0o600 }).listen(), {
      code: 'SOCKET_PATH',
      message: /temporary socket .* would be over 107 bytes/,
    });
  });

  test('a path longer than sun_path allows is refused', async () => {
    await assert.rejects(prepareSocketPath(`/tmp/${'x'.repeat(120)}`, true), { code: 'SOCKET_PATH', message: /107 bytes/ });
  });
});
