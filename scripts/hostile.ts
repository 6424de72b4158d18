/**
 * Hostile guests: each attack runs for a set time against a fresh proxy
 * process while well-behaved guests boot through it on their own links, and
 * a quiet run (no attacker) in the same invocation is the baseline.
 *
 *   npm run hostile -- [--seconds 10] [--good-vms 16]
 *
 * Each good VM has its own socket, as QEMU gives each VM, and boots once a
 * second, each boot on a new link: well within its session budget, so what
 * slows it is the attacker, not its own pacing.
 *
 * Per attack: the proxy's peak RSS, the good guests' boot latency (p50/p99)
 * and its ratio to the quiet run, the exchanges the proxy made with the KBS
 * and the KBS connections it opened, and the log lines it wrote. The
 * attacker runs in its own process, the KBS and the good guests in this one,
 * so the proxy's figures are its own.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeFrame } from '../src/protocol/index.js';
import { SimulatedGuest } from '../src/testkit/guest-simulator.js';
import { TestKbs } from '../src/testkit/test-kbs.js';
import { spawnCli, spawnNode, waitForOutput } from './processes.js';

const ATTACKS = {
  quiet: 'no attacker (baseline)',
  'small-frames': '9-byte garbage frames at full speed, answers never read',
  'large-frames': '1 MiB garbage frames at full speed, answers never read',
  'negotiation-flood': 'NegotiationRequests at full speed, answers never read',
  'negotiation-300': 'NegotiationRequests at 300 frames/s (a real UART), answers read',
  'reconnect-flood': 'a NegotiationRequest then a 2^40-byte frame header, reconnecting as soon as the link is closed',
  'connection-flood': 'up to 5,000 idle connections to its socket, held',
} as const;
type Attack = keyof typeof ATTACKS;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    'good-vms': { type: 'string', default: '16' },
    role: { type: 'string' },
    attack: { type: 'string' },
    path: { type: 'string' },
  },
});
const seconds = Number(values.seconds);

if (values.role === 'attacker') {
  await attack(values.attack as Attack, values.path as string, seconds);
  process.exit(0);
}

/** The attacker's side, in its own process: it stops by itself after `seconds`. */
async function attack(kind: Attack, path: string, secs: number): Promise<void> {
  const s: Socket = connect(path);
  await once(s, 'connect');
  s.on('error', () => undefined);
  const until = Date.now() + secs * 1000;
  setTimeout(() => {
    s.destroy();
    process.exit(0);
  }, secs * 1000).unref();
  const negotiate = encodeFrame('{"version":[0,1,0],"tee":"snp"}');
  if (kind === 'reconnect-flood') {
    // What QEMU's reconnect-ms does for a guest whose link the proxy closed, without the 1 s wait.
    const huge = Buffer.alloc(8);
    huge.writeBigUInt64LE(1n << 40n);
    s.destroy();
    while (Date.now() < until) {
      const link = connect(path);
      link.on('error', () => undefined);
      link.resume();
      link.write(Buffer.concat([negotiate, huge]));
      await once(link, 'close');
    }
    return;
  }
  if (kind === 'connection-flood') {
    const held: Socket[] = [s];
    while (held.length < 5000 && Date.now() < until) {
      const c = connect(path);
      c.on('error', () => undefined);
      held.push(c);
      if (held.length % 100 === 0) await once(c, 'connect').catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, until - Date.now()));
    return;
  }
  if (kind === 'negotiation-300') {
    s.resume();
    while (Date.now() < until) {
      for (let i = 0; i < 3; i++) s.write(negotiate);
      await new Promise((r) => setTimeout(r, 10));
    }
    return;
  }
  s.pause();
  const frame =
    kind === 'small-frames' ? encodeFrame('garbage!!') : kind === 'large-frames' ? encodeFrame(Buffer.alloc(1 << 20, 0x41)) : negotiate;
  const batch = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(65536 / frame.length)) }, () => frame));
  while (Date.now() < until) {
    if (!s.write(batch)) await Promise.race([once(s, 'drain'), new Promise((r) => setTimeout(r, until - Date.now()))]);
  }
}

interface Result {
  readonly attack: Attack;
  readonly peakRssMiB: number;
  readonly boots: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
  readonly kbsRequests: number;
  readonly kbsConnections: number;
  readonly logLines: number;
}

const measurement = randomBytes(48);
const secret = randomBytes(32);

async function run(kind: Attack, dir: string): Promise<Result> {
  const kbs = new TestKbs({ measurement, secret });
  const url = await kbs.start();
  const goodVms = Array.from({ length: Number(values['good-vms']) }, (_, i) => join(dir, `${kind}-good-${i}.sock`));
  const bad = join(dir, `${kind}-bad.sock`);
  // Default limits: what an operator runs.
  const proxy = spawnCli(
    ['--protocol', 'kbs', '--url', url, ...goodVms.flatMap((g) => ['--unix', g]), '--unix', bad, '--log-format', 'json'],
    { inheritStderr: true },
  );
  await waitForOutput(proxy, /"msg":"aproxy ready"/);
  const before = { ...kbs.stats };
  const attacker =
    kind === 'quiet'
      ? undefined
      : spawnNode(fileURLToPath(import.meta.url), ['--role', 'attacker', '--attack', kind, '--path', bad, '--seconds', String(seconds)], {
          inheritStderr: true,
        });
  const latencies: number[] = [];
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  // Each good VM boots once a second, each boot on a new link; the VMs start spread over the first second.
  await Promise.all(
    goodVms.map(async (good, i) => {
      await new Promise((r) => setTimeout(r, (i * 1000) / goodVms.length));
      while (Date.now() < until) {
        const started = Date.now();
        const g = await SimulatedGuest.connect(good);
        const r = await g.boot({ measurement, expectSecret: secret, answerTimeoutMs: 30_000 });
        g.close();
        if (r.secretMatches === true) latencies.push(r.totalMs);
        else failed++;
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
      }
    }),
  );
  if (attacker !== undefined && attacker.exitCode === null) await once(attacker, 'exit');
  const status = await readFile(`/proc/${proxy.pid}/status`, 'utf8');
  const peakRssMiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
  proxy.kill('SIGTERM');
  await once(proxy, 'exit');
  await kbs.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return {
    attack: kind,
    peakRssMiB,
    boots: latencies.length,
    failed,
    p50: pct(50),
    p99: pct(99),
    kbsRequests: kbs.stats.requests - before.requests,
    kbsConnections: kbs.stats.connections - before.connections,
    logLines: proxy.output.stdout.split('\n').filter((l) => l.startsWith('{')).length,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'aproxy-hostile-'));
try {
  console.log(
    `aproxy under hostile guests: ${seconds} s per attack, ${values['good-vms']} good VMs on their own sockets booting once a second (each boot a new link), default limits`,
  );
  const results: Result[] = [];
  for (const kind of Object.keys(ATTACKS) as Attack[]) results.push(await run(kind, dir));
  const quiet = results[0] as Result;
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
  // A good boot is three KBS requests and one log line; start-up lines are what the quiet run wrote beyond its boots.
  const startupLines = quiet.logLines - quiet.boots - quiet.failed;
  console.log(
    "| attack | proxy peak RSS MiB | good boots (failed) | good p50 ms (× quiet) | good p99 ms (× quiet) | KBS requests, the attacker's | KBS connections | log lines, the attacker's |",
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.attack}: ${ATTACKS[r.attack]} | ${f(r.peakRssMiB)} | ${r.boots} (${r.failed}) | ${f(r.p50)} (${(r.p50 / quiet.p50).toFixed(2)}) | ${f(r.p99)} (${(r.p99 / quiet.p99).toFixed(2)}) | ` +
        `${r.kbsRequests} (${r.kbsRequests - 3 * r.boots}) | ${r.kbsConnections} | ${r.logLines} (${r.logLines - r.boots - r.failed - startupLines}) |`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
