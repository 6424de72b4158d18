/**
 * Soak: thousands of sessions, a mix of well-behaved and misbehaving guests,
 * against the real proxy and the built-in test KBS, all in this process so
 * that leaked handles show up in process.getActiveResourcesInfo().
 *
 *   npm run soak -- [--sessions 3000] [--concurrency 32] [--max-seconds 900]
 *
 * Prints handles, heap and RSS before and after; exits 1 on a leak or on a
 * well-behaved guest that failed.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeFrame } from '../src/protocol/index.js';
import { createLogger } from '../src/service/log.js';
import { startProxy } from '../src/service/proxy.js';
import { SimulatedGuest } from '../src/testkit/guest-simulator.js';
import { TestKbs } from '../src/testkit/test-kbs.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '32' },
    'max-seconds': { type: 'string', default: '900' },
  },
});
const total = Number(values.sessions);
const concurrency = Number(values.concurrency);
const maxSeconds = Number(values['max-seconds']);

const measurement = randomBytes(48);
const secret = randomBytes(32);
const NEGOTIATE = encodeFrame('{"version":[0,1,0],"tee":"snp"}');

/** A raw connection that does one bad thing, then waits for the proxy to close it, or closes itself once answered. */
async function badGuest(path: string, kind: number): Promise<void> {
  const s = connect(path);
  await once(s, 'connect');
  const closed = once(s, 'close');
  s.on('error', () => undefined);
  s.on('data', () => undefined);
  switch (kind) {
    case 0: // garbage bytes, then EOF
      s.end(randomBytes(1 + (kind % 200)));
      break;
    case 1: // header announcing 2^40 bytes
      s.write(Buffer.from([0, 0, 0, 0, 0, 1, 0, 0]));
      break;
    case 2: // malformed JSON: the failure answer, and the link stays for the next boot, so the guest leaves
      s.write(encodeFrame('{"version":[0,1,0],'));
      await once(s, 'data');
      s.end();
      break;
    case 3: // truncated frame, then EOF
      s.end(NEGOTIATE.subarray(0, 20));
      break;
    case 4: // negotiate, then vanish
      s.write(NEGOTIATE);
      await once(s, 'data');
      s.destroy();
      break;
    default: // connect and leave without a word
      s.end();
  }
  await closed;
}

function snapshot() {
  const handles: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { handles, heapMiB: m.heapUsed / 2 ** 20, rssMiB: m.rss / 2 ** 20 };
}

const dir = await mkdtemp(join(tmpdir(), 'aproxy-soak-'));
// Whatever happens, the soak stops by itself and leaves nothing behind.
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
setTimeout(() => {
  console.log(`FAIL: the soak did not finish within ${maxSeconds} s (--max-seconds): a guest or the proxy hung`);
  process.exit(1);
}, maxSeconds * 1000).unref();
console.log(`soak: working in ${dir}`);
const kbs = new TestKbs({ measurement, secret });
const url = await kbs.start();
const sock = join(dir, 'p.sock');
// Thousands of boots over a few links: a session budget the soak never meets (the budget has its own tests).
const proxy = await startProxy({
  protocol: 'kbs',
  backendOptions: { url },
  unix: sock,
  log: createLogger({ level: 'silent' }),
  frameTimeoutMs: 2000,
  guestLimits: { sessionsPerMinute: 100_000_000, sessionBurst: 100_000_000 },
});

// Warm up at full concurrency so the KBS keep-alive pool and lazy caches are part of the baseline.
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    const g = await SimulatedGuest.connect(sock);
    await g.boot({ measurement, expectSecret: secret });
    g.close();
  }),
);
while (proxy.server.connectionCount > 0) await once(proxy.server, 'disconnect');
const before = snapshot();
const t0 = performance.now();
let next = 0;
let good = 0;
let goodFailed = 0;
let bad = 0;
const worker = async () => {
  while (next < total) {
    const i = next++;
    if (i % 3 === 0) {
      const g = await SimulatedGuest.connect(sock);
      const wrong = i % 30 === 0;
      const r = await g.boot({ measurement: wrong ? randomBytes(48) : measurement, expectSecret: secret });
      g.close();
      if (wrong) bad++;
      else {
        good++;
        if (!r.ok) goodFailed++;
      }
    } else {
      await badGuest(sock, i % 6);
      bad++;
    }
  }
};
await Promise.all(Array.from({ length: concurrency }, worker));
while (proxy.server.connectionCount > 0) await once(proxy.server, 'disconnect');
await new Promise((r) => setTimeout(r, 100)); // let closed sockets' handles be released
const after = snapshot();
const elapsed = (performance.now() - t0) / 1000;

const kinds = [...new Set([...Object.keys(before.handles), ...Object.keys(after.handles)])].sort();
console.log(
  `soak: ${total} sessions (${good} well-behaved, ${bad} misbehaving or refused) at concurrency ${concurrency} in ${elapsed.toFixed(1)} s`,
);
console.log(`well-behaved guests that failed: ${goodFailed}`);
console.log('handle type            before  after');
for (const k of kinds)
  console.log(`${k.padEnd(22)} ${String(before.handles[k] ?? 0).padStart(6)} ${String(after.handles[k] ?? 0).padStart(6)}`);
console.log(
  `heap used MiB          ${before.heapMiB.toFixed(1).padStart(6)} ${after.heapMiB.toFixed(1).padStart(6)}${(globalThis as { gc?: unknown }).gc ? '' : '  (run with --expose-gc for a settled heap)'}`,
);
console.log(`RSS MiB                ${before.rssMiB.toFixed(1).padStart(6)} ${after.rssMiB.toFixed(1).padStart(6)}`);
console.log(`KBS sessions still held by the test KBS: ${kbs.sessionCount} (expire after their TTL)`);

// TCP sockets are the shared keep-alive pool to the KBS (both ends live in this process);
// it may settle at a different size, bounded by the pool's limit, so it is reported, not failed.
const POOL_BOUND = 2 * 128;
const leaked = kinds.filter((k) =>
  k === 'TCPSocketWrap' ? (after.handles[k] ?? 0) > POOL_BOUND : (after.handles[k] ?? 0) > (before.handles[k] ?? 0),
);
await proxy.close();
await kbs.close();
await rm(dir, { recursive: true, force: true });
if (leaked.length > 0 || goodFailed > 0) {
  console.log(
    `FAIL: ${leaked.length > 0 ? `leaked ${leaked.join(', ')}` : ''} ${goodFailed > 0 ? `${goodFailed} good guests failed` : ''}`,
  );
  process.exitCode = 1;
} else {
  console.log('OK: no leaked handles, every well-behaved guest got its secret');
}
