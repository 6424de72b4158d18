import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeConfig } from '../../src/service/config/normalize.js';
import { createLogger } from '../../src/service/log.js';
import { socketActivationFds } from '../../src/service/systemd.js';

const log = createLogger({ level: 'silent' });

describe('sockets systemd passes', () => {
  test('are named by LISTEN_FDNAMES, and the variables are taken out of the environment', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'vsock:vm-a' };
    assert.deepEqual(socketActivationFds(env, 42), [
      { fd: 3, name: 'vsock' },
      { fd: 4, name: 'vm-a' },
    ]);
    assert.deepEqual(env, {});
  });

  test("names that do not match the count are not used; another process's sockets are not ours", () => {
    assert.deepEqual(socketActivationFds({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'only-one' }, 42), [{ fd: 3 }, { fd: 4 }]);
    assert.deepEqual(socketActivationFds({ LISTEN_PID: '41', LISTEN_FDS: '1' }, 42), []);
  });

  test('a listener adopts the socket by name; the others are listeners named after their unit, or fd:N', () => {
    const config = normalizeConfig({
      protocol: 'kbs',
      log,
      listenFds: [
        { fd: 3, name: 'aproxy-vsock.socket' },
        { fd: 4, name: 'vm-a' },
        { fd: 5, name: 'twice' },
        { fd: 6, name: 'twice' },
        { fd: 7 },
      ],
      listeners: [{ systemd: 'vm-a', backendOptions: { resource: 'vm/a/key' } }],
    });
    const byName = new Map(config.listeners.map((l) => [l.name, l]));
    assert.deepEqual([...byName.keys()].sort(), ['aproxy-vsock', 'fd:5', 'fd:6', 'fd:7', 'vm-a']);
    assert.deepEqual(byName.get('vm-a')?.address, { systemd: 'vm-a', fd: 4 });
    assert.equal(byName.get('vm-a')?.key, 'fd:4');
    assert.equal(byName.get('vm-a')?.backendOptions.resource, 'vm/a/key');
  });

  test('a name two sockets share cannot be adopted, and the error says how to split them', () => {
    assert.throws(
      () =>
        normalizeConfig({
          protocol: 'kbs',
          log,
          listenFds: [
            { fd: 3, name: 'vm' },
            { fd: 4, name: 'vm' },
          ],
          listeners: [{ systemd: 'vm' }],
        }),
      /systemd passed 2 sockets named "vm" \(fds 3, 4\); a listener adopts one: give each ListenStream= its own \.socket unit/,
    );
  });

  test('a named socket not passed stays an address for preflight to judge', () => {
    const config = normalizeConfig({ protocol: 'kbs', log, listeners: [{ systemd: 'vm-b' }] });
    assert.deepEqual(config.listeners[0]?.address, { systemd: 'vm-b' });
    assert.equal(config.listeners[0]?.key, 'systemd:vm-b');
    assert.equal(config.listeners[0]?.name, 'vm-b');
  });
});
