import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inheritedSocketKind } from '../../src/frontend/inherited-listener.js';
import { tempDir } from '../support/harness.js';

const fdOf = (handleOwner: Server | Socket) => (handleOwner as unknown as { _handle: { fd: number } })._handle.fd;

describe('an inherited fd is served only when it is a listening Unix or vsock stream socket', () => {
  test('a listening Unix stream socket is served as Unix', async (t) => {
    const server = createServer().listen(join(await tempDir(t), 'l.sock'));
    await once(server, 'listening');
    t.after(() => server.close());
    assert.equal(inheritedSocketKind(fdOf(server)), 'unix');
  });

  test('a connected (not listening) Unix socket is refused, named as such', async (t) => {
    const path = join(await tempDir(t), 'c.sock');
    const server = createServer().listen(path);
    await once(server, 'listening');
    const client = connect(path);
    await once(client, 'connect');
    t.after(() => {
      client.destroy();
      server.close();
    });
    assert.throws(() => inheritedSocketKind(fdOf(client)), {
      code: 'CONFIG',
      message: /inherited fd \d+ is a non-listening unix stream socket; aproxy serves only/,
    });
  });

  test('a file is refused as not a socket', async (t) => {
    const fd = openSync(join(await tempDir(t), 'plain'), 'w');
    t.after(() => closeSync(fd));
    assert.throws(() => inheritedSocketKind(fd), { code: 'CONFIG', message: new RegExp(`inherited fd ${fd} is not a socket`) });
  });
});
