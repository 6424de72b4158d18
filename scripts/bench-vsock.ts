/**
 * The vsock row of `npm run bench`, measured inside the QEMU guest that has
 * the vsock loopback transport (bench.ts starts it): one proxy process
 * serving both a Unix socket and a vsock port, the same sessions over each
 * in alternating rounds, and the proxy's own CPU time from /proc. Absolute
 * numbers under TCG mean nothing; the vsock/unix ratios do. Prints one JSON
 * line.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type ProxyAddress, SimulatedGuest } from '../src/testkit/guest-simulator.js';
import { cpuMsOf, spawnCli, waitForOutput } from './processes.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '40' },
    concurrency: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Number(values.sessions);
const C = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const measurement = Buffer.alloc(48, 0x42);
const secret = Buffer.alloc(32, 0x24);
const PORT = 1995;
const unix = '/tmp/aproxy-bench.sock';

/** Resident set of a process, MiB. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** Spawn to "listening for guests" with only this transport, ms. */
async function startupMs(args: string[]): Promise<number> {
  const t0 = performance.now();
  const p = spawnCli(['--protocol', 'kbs', '--url', 'http://127.0.0.1:9', '--log-format', 'json', ...args], { inheritStderr: true });
  await waitForOutput(p, /"msg":"listening for guests"/);
  const ms = performance.now() - t0;
  p.kill('SIGKILL');
  await once(p, 'exit');
  return ms;
}
const startup = { unix: 0, vsock: 0 };
for (let i = 0; i < 3; i++) {
  startup.unix += (await startupMs(['--unix', '/tmp/aproxy-startup.sock', '--force'])) / 3;
  startup.vsock += (await startupMs(['--vsock', String(PORT + 1)])) / 3;
}

const kbs = spawnCli(['test-kbs', '--measurement', measurement.toString('hex'), '--secret', secret.toString('hex'), '--port', '0'], {
  inheritStderr: true,
});
const url = (await waitForOutput(kbs, /http:\/\/127\.0\.0\.1:\d+/))[0];
const proxy = spawnCli(
  [
    '--protocol',
    'kbs',
    '--url',
    url,
    '--unix',
    unix,
    '--force',
    '--vsock',
    String(PORT),
    '--log-format',
    'json',
    '--phase-timeout-ms',
    '300000',
    '--sessions-per-minute',
    '100000000',
    '--session-burst',
    '100000000',
  ],
  { inheritStderr: true },
);
await waitForOutput(proxy, /"msg":"aproxy ready"/);
const pid = proxy.pid as number;

async function run(address: ProxyAddress): Promise<{ ms: number; cpu: number; failed: number }> {
  const guests = await Promise.all(Array.from({ length: C }, () => SimulatedGuest.connect(address)));
  let next = 0;
  let failed = 0;
  const cpu0 = await cpuMsOf(pid);
  const t0 = performance.now();
  await Promise.all(
    guests.map(async (g) => {
      while (next < N) {
        next++;
        if (!(await g.boot({ measurement, expectSecret: secret })).ok) failed++;
      }
    }),
  );
  const ms = performance.now() - t0;
  const cpu = (await cpuMsOf(pid)) - cpu0;
  for (const g of guests) g.close();
  return { ms, cpu, failed };
}

const totals = { unix: { ms: 0, cpu: 0, failed: 0 }, vsock: { ms: 0, cpu: 0, failed: 0 } };
await run(unix); // warm-up: JIT, the KBS connection pool
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, address] of [
    ['unix', unix],
    ['vsock', { cid: 1, port: PORT }],
  ] as const) {
    const x = await run(address);
    totals[name].ms += x.ms;
    totals[name].cpu += x.cpu;
    totals[name].failed += x.failed;
  }
}
/** RSS added by `n` idle connections over one transport, KiB per connection. */
async function idleKiB(n: number, address: ProxyAddress): Promise<number> {
  const before = await rssMiB(pid);
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const g = await SimulatedGuest.connect(address);
    sockets.push(g);
  }
  // One more boot on the last link: every connection has been accepted and served by now.
  await sockets[n - 1]?.boot({ measurement });
  const after = await rssMiB(pid);
  for (const g of sockets) g.close();
  return ((after - before) * 1024) / n;
}
const idle = { unix: await idleKiB(500, unix), vsock: await idleKiB(500, { cid: 1, port: PORT }) };

const per = (t: { ms: number; cpu: number }) => ({
  sessionsPerSecond: (N * ROUNDS * 1000) / t.ms,
  proxyCpuMsPerSession: t.cpu / (N * ROUNDS),
});
const u = per(totals.unix);
const v = per(totals.vsock);
console.log(
  JSON.stringify({
    sessions: N * ROUNDS,
    concurrency: C,
    unix: { ...u, failed: totals.unix.failed },
    vsock: { ...v, failed: totals.vsock.failed },
    throughputRatio: v.sessionsPerSecond / u.sessionsPerSecond,
    cpuRatio: v.proxyCpuMsPerSession / u.proxyCpuMsPerSession,
    startupMs: startup,
    idleKiBPerConnection: idle,
  }),
);
proxy.kill('SIGTERM');
kbs.kill('SIGTERM');
await Promise.all([once(proxy, 'exit'), once(kbs, 'exit')]);
