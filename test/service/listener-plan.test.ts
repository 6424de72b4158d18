import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/protocol/errors.js';
import { normalizeConfig } from '../../src/service/config/normalize.js';
import type { ProxyConfig } from '../../src/service/config/types.js';
import { diffPlans, planListeners } from '../../src/service/listener-plan.js';
import { createLogger } from '../../src/service/log.js';

const log = createLogger({ level: 'silent' });
/** A config as a program writes it, normalized (defaults, inheritance, the listener rules), then planned. */
const plan = (config: Omit<ProxyConfig, 'log'>) => planListeners(normalizeConfig({ ...config, log }));

const base = { protocol: 'kbs', backendOptions: { url: 'http://kbs:8080' } } as const;

describe('listener planning', () => {
  test('each address becomes one listener, named after it unless named, with the proxy-wide settings', () => {
    const plans = plan({ ...base, unix: ['/run/a.sock'], vsock: 1995, listenFds: [{ fd: 3 }], maxFrameBytes: 1000, socketMode: 0o660 });
    assert.deepEqual(
      plans.map((p) => [p.key, p.name]),
      [
        ['fd:3', 'fd:3'],
        ['unix:/run/a.sock', '/run/a.sock'],
        ['vsock:1995', 'vsock:1995'],
      ],
    );
    assert.equal(plans[1]?.address.unix !== undefined && plans[1].address.socket.mode, 0o660);
    assert.equal(plans[1]?.maxFrameBytes, 1000);
    assert.equal(plans[2]?.frameTimeoutMs, 30_000, 'the default where nothing is set');
  });

  test("a listener's own options override the proxy's, and only listeners with equal backend options share a backend", () => {
    const plans = plan({
      ...base,
      listeners: [
        { name: 'a', unix: '/a' },
        { name: 'b', unix: '/b', backendOptions: { resource: 'x/y/z' }, phaseTimeoutMs: 5 },
        { name: 'c', vsock: 2000 },
      ],
    });
    const [a, b, c] = plans;
    assert.deepEqual(b?.backendOptions, { url: 'http://kbs:8080', resource: 'x/y/z' });
    assert.equal(b?.phaseTimeoutMs, 5);
    assert.equal(a?.backendKey, c?.backendKey);
    assert.notEqual(a?.backendKey, b?.backendKey);
  });

  test('the proxy-wide socket settings reach every Unix listener that does not set its own', () => {
    const plans = plan({
      ...base,
      socketMode: 0o660,
      socketGid: 64,
      listeners: [
        { name: 'a', unix: '/a' },
        { name: 'b', unix: '/b', socketMode: 0o600 },
        { name: 'c', vsock: 3 },
      ],
    });
    assert.deepEqual(
      plans.map((p) => (p.address.unix === undefined ? [undefined, undefined] : [p.address.socket.mode, p.address.socket.gid])),
      [
        [0o660, 64],
        [0o600, 64],
        [undefined, undefined],
      ],
    );
  });

  test('clashes and bad names are refused before anything is bound', () => {
    const cases: Array<[Omit<ProxyConfig, 'log'>, RegExp]> = [
      [{ ...base }, /no listener/],
      [{ ...base, unix: ['/a'], listeners: [{ unix: '/a' }] }, /two listeners on unix:\/a/],
      [
        {
          ...base,
          listeners: [
            { name: 'x', unix: '/a' },
            { name: 'x', vsock: 1 },
          ],
        },
        /two listeners named "x"/,
      ],
      [{ ...base, listeners: [{ name: '..', unix: '/a' }] }, /listener name "\.\."/],
      [{ ...base, listeners: [{ name: 'n'.repeat(65), unix: '/a' }] }, /1 to 64 letters/],
    ];
    for (const [config, re] of cases)
      assert.throws(
        () => plan(config),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
        String(re),
      );
    assert.equal(plan({ ...base, listeners: [{ name: 'n'.repeat(64), unix: '/a' }] }).length, 1);
  });
});

describe('a reload as the difference of two plans', () => {
  const before = plan({
    ...base,
    listeners: [
      { name: 'a', unix: '/a' },
      { name: 'b', unix: '/b' },
      { name: 'c', vsock: 3 },
    ],
  });

  test('listeners are matched by address: added, removed, and changed when any setting differs', () => {
    const after = plan({
      ...base,
      listeners: [
        { name: 'a', unix: '/a', backendOptions: { resource: 'new/res/x' } },
        { name: 'c', vsock: 3 },
        { name: 'd', unix: '/d' },
      ],
    });
    const d = diffPlans(before, after);
    assert.deepEqual(
      d.added.map((p) => p.name),
      ['d'],
    );
    assert.deepEqual(
      d.removed.map((p) => p.name),
      ['b'],
    );
    assert.deepEqual(
      d.changed.map((p) => p.name),
      ['a'],
    );
  });

  test('the same configuration, written in another key order, changes nothing', () => {
    const again = plan({
      backendOptions: { url: 'http://kbs:8080' },
      protocol: 'kbs',
      listeners: [
        { unix: '/a', name: 'a' },
        { name: 'b', unix: '/b' },
        { vsock: 3, name: 'c' },
      ],
    });
    assert.deepEqual(diffPlans(before, again), { added: [], removed: [], changed: [] });
  });

  test('a new name at the same address is a change, not a new listener', () => {
    const renamed = plan({
      ...base,
      listeners: [
        { name: 'z', unix: '/a' },
        { name: 'b', unix: '/b' },
        { name: 'c', vsock: 3 },
      ],
    });
    const d = diffPlans(before, renamed);
    assert.deepEqual([d.added.length, d.removed.length, d.changed.map((p) => p.name)], [0, 0, ['z']]);
  });
});
