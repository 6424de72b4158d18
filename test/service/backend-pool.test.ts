import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BackendContext, defineBackend } from '../../src/backends/contract.js';
import { type PreparedBackend, prepareBackend } from '../../src/backends/registry.js';
import { BackendPool } from '../../src/service/backend-pool.js';
import { normalizeConfig } from '../../src/service/config/normalize.js';
import type { ProxyConfig } from '../../src/service/config/types.js';
import { type PlannedListener, planListeners as planned } from '../../src/service/listener-plan.js';
import { createLogger } from '../../src/service/log.js';

const planListeners = (config: Omit<ProxyConfig, 'log'>) => planned(normalizeConfig({ ...config, log: createLogger({ level: 'silent' }) }));

/** Each distinct backend of the plans, its options checked: what the preflight hands the pool. */
async function prepareAll(plans: readonly PlannedListener[]): Promise<Map<string, PreparedBackend>> {
  const out = new Map<string, PreparedBackend>();
  for (const p of plans) if (!out.has(p.backendKey)) out.set(p.backendKey, await prepareBackend(p.protocol, p.backendOptions));
  return out;
}

/** A backend that shares one "connection pool" per origin through the proxy, and records what happens. */
function recordingBackend(events: string[]) {
  return defineBackend<{ origin: string; tag: string }>({
    apiVersion: 2,
    name: 'recording',
    parseOptions: (raw) => ({ origin: String(raw.origin), tag: String(raw.tag) }),
    create: (options, ctx: BackendContext) => {
      void ctx.shared?.acquire(
        `pool ${options.origin}`,
        async () => {
          events.push(`open pool ${options.origin}`);
          return options.origin;
        },
        async (origin) => void events.push(`close pool ${origin}`),
      );
      return {
        openSession: () => ({ negotiate: async () => assert.fail(), attest: async () => assert.fail(), close: () => undefined }),
        close: async () => void events.push(`close backend ${options.tag}`),
      };
    },
  });
}

describe('the backend pool: one owner of backends and what they share', () => {
  test('listeners with equal options share a backend; a backend closes after its last holder, a shared pool after its last backend', async () => {
    const events: string[] = [];
    const protocol = recordingBackend(events);
    const plans = planListeners({
      protocol,
      backendOptions: { origin: 'http://kbs:1' },
      listeners: [
        { name: 'a', unix: '/a', backendOptions: { tag: 'x' } },
        { name: 'b', unix: '/b', backendOptions: { tag: 'x' } },
        { name: 'c', unix: '/c', backendOptions: { tag: 'y' } },
      ],
    });
    const pool = new BackendPool(1000, createLogger({ level: 'silent' }));
    await pool.create(await prepareAll(plans));
    assert.equal(pool.backends.length, 2, 'a and b share one backend, c has its own');
    assert.deepEqual(pool.sharedKeys, ['pool http://kbs:1'], 'and both backends share one pool');
    assert.deepEqual(events, ['open pool http://kbs:1']);

    const [a, b, c] = plans.map((p) => pool.hold(p.backendKey));
    const session = pool.hold(plans[0]!.backendKey);
    a!.release();
    b!.release();
    assert.equal(pool.backends.length, 2, 'a session still holds x');
    session.release();
    session.release(); // a release is once
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['open pool http://kbs:1', 'close backend x'], 'x closed; the pool stays for y');
    assert.equal(pool.tryHold(plans[0]!.backendKey), undefined, 'a closed backend is not handed out again');
    c!.release();
    await pool.close();
    assert.deepEqual(events, ['open pool http://kbs:1', 'close backend x', 'close backend y', 'close pool http://kbs:1']);
  });

  test('a backend that fails to create leaves none of that batch behind', async () => {
    const events: string[] = [];
    const good = recordingBackend(events);
    const bad = defineBackend({ apiVersion: 2, name: 'bad', create: () => Promise.reject(new Error('cannot start')) });
    const plans = planListeners({
      protocol: good,
      backendOptions: { origin: 'o', tag: 't' },
      listeners: [
        { name: 'a', unix: '/a' },
        { name: 'z', unix: '/z', protocol: bad },
      ],
    });
    const pool = new BackendPool(1000, createLogger({ level: 'silent' }));
    await assert.rejects(pool.create(await prepareAll(plans)), /cannot start/);
    assert.equal(pool.backends.length, 0);
    assert.deepEqual(events, ['open pool o', 'close backend t', 'close pool o']);
  });
});
