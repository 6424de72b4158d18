/**
 * The first guest after a start: spawn → the guest holds its secret, the
 * CPU the process used by then, and its resident memory then; aproxy as an
 * operator runs it against the bare relay, alternating trials in one run.
 * The guest (the simulator, its key and decryption included) connects as
 * soon as the socket takes connections, as QEMU does when systemd starts
 * aproxy with a VM already waiting.
 *
 *   npm run bench:startup -- [--trials 7]      (also a table of npm run bench)
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import module from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SimulatedGuest } from '../src/testkit/guest-simulator.js';
import { cpuMsOf, type Spawned, spawnCli, spawnNode, waitForOutput } from './processes.js';

export interface StartupFigures {
  /** Spawn → the first guest's AttestationResponse, ms. */
  readonly firstGuestMs: number;
  /** CPU the process used by then, ms. */
  readonly cpuMs: number;
  /** Its resident memory then, MiB. */
  readonly rssMiB: number;
}

/** aproxy and the relay, each from a start with the compile cache as the last start left it, and from an empty one. */
export interface StartupRow {
  readonly trials: number;
  /** Whether this Node has a compile cache (22 and later); without one both rows are cold starts. */
  readonly compileCache: boolean;
  readonly aproxy: StartupFigures;
  readonly relay: StartupFigures;
  readonly aproxyEmptyCache: StartupFigures;
  readonly relayEmptyCache: StartupFigures;
}

/** The bare relay's script (scripts/bare-relay.ts), the baseline of every benchmark. */
export const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'bare-relay.js');

/** Connects the moment the socket exists and accepts (QEMU retries the same way). */
async function connectWhenUp(path: string): Promise<SimulatedGuest> {
  for (;;) {
    try {
      return await SimulatedGuest.connect(path);
    } catch {
      await new Promise((r) => setImmediate(r));
    }
  }
}

async function rssMiBOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

/** Resolves once the process has written its compile cache into `dir` (after its first session). */
async function cacheWritten(dir: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while ((await readdir(dir, { recursive: true }).catch(() => [])).length < 2) {
    if (performance.now() > deadline) throw new Error(`no compile cache was written in ${dir}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * One trial: spawn, boot one guest as soon as it can connect, read the
 * figures, stop the process (after it has written its compile cache into
 * `awaitCache`, if given).
 */
async function trial(spawnIt: (sock: string) => Spawned, sock: string, measurement: Buffer, awaitCache?: string): Promise<StartupFigures> {
  const t0 = performance.now();
  const child = spawnIt(sock);
  child.stdout?.resume();
  const guest = await connectWhenUp(sock);
  const boot = await guest.boot({ measurement });
  const firstGuestMs = performance.now() - t0;
  const pid = child.pid as number;
  const [cpuMs, rssMiB] = await Promise.all([cpuMsOf(pid), rssMiBOf(pid)]);
  guest.close();
  if (awaitCache !== undefined) await cacheWritten(awaitCache);
  child.kill('SIGKILL');
  await once(child, 'exit');
  await rm(sock, { force: true });
  if (!boot.ok) throw new Error(`the first guest was not served: ${boot.error}`);
  return { firstGuestMs, cpuMs, rssMiB };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

/**
 * `trials` alternating trials of each against the KBS at `kbsUrl`, twice:
 * with the compile cache a previous start wrote (a restart, a crash
 * restart), and with an empty one (the first start after an install or an
 * upgrade); medians.
 */
export async function measureStartup(kbsUrl: string, measurement: Buffer, trials = 7): Promise<StartupRow> {
  const dir = await mkdtemp(join(tmpdir(), 'aproxy-startup-'));
  // As an operator runs it: JSON logs with the one line per session, metrics on, and
  // NODE_COMPILE_CACHE in a directory of its own (the unit's CacheDirectory). The relay gets one too.
  const cacheOf = (name: string) => join(dir, `${name}-compile-cache`);
  const aproxy = (sock: string) =>
    spawnCli(['--protocol', 'kbs', '--url', kbsUrl, '--unix', sock, '--log-format', 'json', '--metrics', '127.0.0.1:0'], {
      inheritStderr: true,
      env: { NODE_COMPILE_CACHE: cacheOf('aproxy') },
    });
  const relay = (sock: string) => spawnNode(RELAY, [sock, kbsUrl], { inheritStderr: true, env: { NODE_COMPILE_CACHE: cacheOf('relay') } });
  const compileCache = typeof (module as { flushCompileCache?: unknown }).flushCompileCache === 'function';
  const runs = {
    aproxy: [] as StartupFigures[],
    relay: [] as StartupFigures[],
    aproxyEmptyCache: [] as StartupFigures[],
    relayEmptyCache: [] as StartupFigures[],
  };
  const sides = [
    ['aproxy', aproxy],
    ['relay', relay],
  ] as const;
  try {
    for (let i = 0; i < trials; i++) {
      for (const [name, spawnIt] of sides) {
        const sock = join(dir, `${name}.sock`);
        await rm(cacheOf(name), { recursive: true, force: true });
        // From an empty cache; the trial waits until the process has written it, so the next one starts warm.
        runs[`${name}EmptyCache`].push(await trial(spawnIt, sock, measurement, compileCache ? cacheOf(name) : undefined));
        runs[name].push(await trial(spawnIt, sock, measurement));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const med = (f: StartupFigures[]): StartupFigures => ({
    firstGuestMs: median(f.map((x) => x.firstGuestMs)),
    cpuMs: median(f.map((x) => x.cpuMs)),
    rssMiB: median(f.map((x) => x.rssMiB)),
  });
  return {
    trials,
    compileCache,
    aproxy: med(runs.aproxy),
    relay: med(runs.relay),
    aproxyEmptyCache: med(runs.aproxyEmptyCache),
    relayEmptyCache: med(runs.relayEmptyCache),
  };
}

/** The table, one line per figure: ours, the relay's, the ratio. */
export function startupTable(r: StartupRow): string {
  const row = (what: string, a: number, b: number, unit: string) =>
    `| ${what} | ${b.toFixed(0)} ${unit} | ${a.toFixed(0)} ${unit} | ${(a / b).toFixed(2)}× |`;
  const cache = r.compileCache ? 'NODE_COMPILE_CACHE as the previous start left it' : 'this Node has no compile cache';
  return [
    `first guest after a start (medians of ${r.trials} alternating trials, node ${process.version}; ${cache}):`,
    '| | bare relay | aproxy | aproxy ÷ relay |',
    '| --- | ---: | ---: | ---: |',
    row('spawn → the first guest holds its secret', r.aproxy.firstGuestMs, r.relay.firstGuestMs, 'ms'),
    row('CPU used by then', r.aproxy.cpuMs, r.relay.cpuMs, 'ms'),
    row('resident memory then', r.aproxy.rssMiB, r.relay.rssMiB, 'MiB'),
    row(
      'the same from an empty compile cache (first start of a version)',
      r.aproxyEmptyCache.firstGuestMs,
      r.relayEmptyCache.firstGuestMs,
      'ms',
    ),
    row('CPU used by then, empty compile cache', r.aproxyEmptyCache.cpuMs, r.relayEmptyCache.cpuMs, 'ms'),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { trials: { type: 'string', default: '7' } } });
  const measurement = randomBytes(48);
  const kbs = spawnCli(
    ['test-kbs', '--measurement', measurement.toString('hex'), '--secret', randomBytes(32).toString('hex'), '--port', '0'],
    {
      inheritStderr: true,
    },
  );
  const url = (await waitForOutput(kbs, /http:\/\/127\.0\.0\.1:\d+/))[0];
  try {
    console.log(startupTable(await measureStartup(url, measurement, Number(values.trials))));
  } finally {
    kbs.kill('SIGTERM');
    await once(kbs, 'exit');
  }
}
