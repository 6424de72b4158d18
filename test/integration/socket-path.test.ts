import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { prepareSocketPath } from '../../src/frontend/socket-path.js';
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
    await prepareSocketPath(join(dir, 'a'), false);
    await prepareSocketPath(join(dir, 'a'), true);
  });

  test('a stale socket is an error without --force and removed with it', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'stale.sock');
    await leaveStaleSocket(path);
    assert.ok((await stat(path)).isSocket());
    await assert.rejects(prepareSocketPath(path, false), { code: 'SOCKET_IN_USE', message: /already exists/ });
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
    await assert.rejects(prepareSocketPath(path, true), { code: 'SOCKET_IN_USE', message: /another process is listening/ });
    assert.ok((await stat(path)).isSocket());
  });

  test('--force refuses a regular file and a directory', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'f'), 'x');
    await mkdir(join(dir, 'd'));
    await assert.rejects(prepareSocketPath(join(dir, 'f'), true), { code: 'SOCKET_PATH', message: /regular file/ });
    await assert.rejects(prepareSocketPath(join(dir, 'd'), true), { code: 'SOCKET_PATH', message: /directory/ });
  });

  test('a path longer than sun_path allows is refused', async () => {
    await assert.rejects(prepareSocketPath(`/tmp/${'x'.repeat(120)}`, true), { code: 'SOCKET_PATH', message: /107 bytes/ });
  });
});
