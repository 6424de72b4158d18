/**
 * Benchmark: the proxy's cost on top of the KBS when many guests boot at once.
 *
 *   npm run bench -- [--sessions 256] [--sweep 1,8,32,128] [--idle 10000] [--kbs-delay-ms 0] [--keep-profile FILE] [--out bench-results.json] [--no-vsock]
 *
 * Three processes: the built-in test KBS and the proxy (each `bin/aproxy`,
 * as an operator runs them) and this driver. Guest-side crypto stays out of
 * the proxy: keys are generated before the clock starts, and the secrets are
 * decrypted (for a sample) after it stops. For each concurrency C it runs N
 * sessions through the proxy and the same N sessions directly against the
 * KBS with the proxy's own HTTP client (KbsClient: one pooled undici pool),
 * in alternating rounds, and prints throughput, latency percentiles, the
 * ratio, and the proxy's CPU time per session and RSS (from its metrics).
 * Then the first guest after a start (spawn → its secret, CPU, RSS), ours
 * and the relay's (scripts/startup-bench.ts), and a boot storm the moment
 * each starts (CPU per boot; aproxy also without metrics and session lines,
 * to show what they cost). Last, the vsock row: vsock against Unix in one proxy inside a QEMU guest
 * (scripts/bench-vsock.ts), where the machine has QEMU and the addon.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { KbsClient } from '../src/backends/kbs/client.js';
import { nonNegativeInt } from '../src/cli/usage.js';
import { FrameReader } from '../src/frontend/frame-reader.js';
import { vsockAddonPath } from '../src/frontend/vsock-native.js';
import {
  type AttestationRequest,
  type AttestationResponse,
  buildSyntheticReport,
  decryptSecret,
  encodeFrame,
  FrameDecoder,
  generateP521KeyPair,
  jweToAttestationResponse,
  KBS_NEGOTIATION_PARAMS,
  type P521KeyPair,
  parseAttestationResponse,
  parseNegotiationResponse,
  reportDataDigest,
  serializeAttestationRequest,
  serializeNegotiationRequest,
} from '../src/protocol/index.js';
import { APROXY_BIN, cpuMsOf, spawnCli, spawnNode, waitForOutput } from './processes.js';
import { findQemuKit, runInVsockVm } from './qemu/vm.js';
import { measureStartup, median, RELAY, startupTable } from './startup-bench.js';

/** The benchmark's guests boot many times a second per link, which no VM does: a session budget they never meet (the check itself still runs per session). */
const UNPACED = ['--sessions-per-minute', '100000000', '--session-burst', '100000000'];

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '256' },
    sweep: { type: 'string', default: '1,8,32,128' },
    idle: { type: 'string', default: '10000' },
    out: { type: 'string', default: 'bench-results.json' },
    'no-vsock': { type: 'boolean', default: false },
    // A KBS this far away (each answer held that long), for every table of the run.
    'kbs-delay-ms': { type: 'string', default: '0' },
    // Where to keep the profile behind "where aproxy's CPU goes" (Chrome DevTools opens it).
    'keep-profile': { type: 'string' },
  },
});
const N = Number(values.sessions);
const SWEEP = (values.sweep ?? '').split(',').map(Number);
const IDLE = Number(values.idle);
const KBS_DELAY_MS = flagOrExit(() => nonNegativeInt('kbs-delay-ms', values['kbs-delay-ms'] ?? '0'));

const measurement = randomBytes(48);
const secret = randomBytes(32);

/** A flag's value, or its error on stderr and exit 2 (the command line's convention). */
function flagOrExit<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}

// ---------- processes ----------

/** The proxy's own CPU time and RSS, as its metrics endpoint reports them. */
async function procStats(): Promise<{ cpuMs: number; rssMiB: number }> {
  const m = await scrape(metricsUrl);
  return { cpuMs: (m.aproxy_process_cpu_seconds_total ?? 0) * 1000, rssMiB: (m.aproxy_process_resident_memory_bytes ?? 0) / 2 ** 20 };
}

async function scrape(url: string): Promise<Record<string, number>> {
  const res = await request(url, { reset: true }); // no keep-alive: the scrape must not count as a handle
  const text = await res.body.text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m =
      /^(aproxy_nodejs_active_(?:handles|resources)_total|aproxy_sessions_total\{[^}]*\}|aproxy_guest_connections|aproxy_process_cpu_seconds_total|aproxy_process_resident_memory_bytes)(\{[^}]*\})? (\S+)$/.exec(
        line,
      );
    // Labelled series of one name are summed (aproxy_guest_connections per listener).
    if (m?.[1] && m[3]) out[m[1]] = (out[m[1]] ?? 0) + Number(m[3]);
  }
  return out;
}

// ---------- guests (driver side) ----------

interface Done {
  latencyMs: number;
  key: P521KeyPair;
  response: AttestationResponse;
}

function evidenceFor(key: P521KeyPair, challenge: Uint8Array, params: typeof KBS_NEGOTIATION_PARAMS): AttestationRequest {
  const report = buildSyntheticReport({ measurement, reportData: reportDataDigest(params, challenge, key.publicKey) });
  return { tee: 'snp', evidence: { tag: 'Snp', value: { report, certs_buf: undefined } }, challenge, key: key.publicKey };
}

/** One guest link doing sessions back to back, like SVSM (minus its crypto, done outside the clock). */
/** Connects like QEMU at VM start, retrying while the accept queue is full. */
async function connectGuest(path: string): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    const s = connect(path);
    const err = await new Promise<Error | undefined>((resolve) => {
      s.once('connect', () => resolve(undefined));
      s.once('error', resolve);
    });
    if (err === undefined) return s;
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt > 100) throw err;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function proxiedWorker(path: string, keys: P521KeyPair[], take: () => number | undefined, done: Done[]): Promise<void> {
  const s = await connectGuest(path);
  const reader = new FrameReader(s, { maxFrameBytes: 1 << 20, frameTimeoutMs: 60_000 });
  const negotiation = encodeFrame(serializeNegotiationRequest({ version: [0, 1, 0], tee: 'snp' }));
  for (let i = take(); i !== undefined; i = take()) {
    const key = keys[i % keys.length] as P521KeyPair;
    const t0 = performance.now();
    s.write(negotiation);
    const neg = parseNegotiationResponse((await reader.next()) ?? Buffer.alloc(0));
    s.write(encodeFrame(serializeAttestationRequest(evidenceFor(key, neg.challenge, neg.params as typeof KBS_NEGOTIATION_PARAMS))));
    const response = parseAttestationResponse((await reader.next()) ?? Buffer.alloc(0));
    done.push({ latencyMs: performance.now() - t0, key, response });
  }
  s.destroy();
}

/** The proxy's HTTP work for one session, with the proxy's client, and nothing else. */
async function directWorker(client: KbsClient, keys: P521KeyPair[], take: () => number | undefined, done: Done[]): Promise<void> {
  const ctx = {
    signal: new AbortController().signal,
    observe: () => undefined,
    annotate: () => undefined,
    deadline: Number.POSITIVE_INFINITY,
  };
  for (let i = take(); i !== undefined; i = take()) {
    const key = keys[i % keys.length] as P521KeyPair;
    const t0 = performance.now();
    const { challenge, cookie } = await client.auth('snp', ctx);
    const req = evidenceFor(key, challenge, KBS_NEGOTIATION_PARAMS as typeof KBS_NEGOTIATION_PARAMS);
    const token = await client.attest(cookie, req, ctx);
    const jwe = await client.resource(cookie, 'default/sample/test', 'default/sample/test', ctx);
    done.push({ latencyMs: performance.now() - t0, key, response: jweToAttestationResponse(jwe, token) });
  }
}

interface RunResult {
  sessionsPerSec: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

type Work = (take: () => number | undefined, done: Done[]) => Promise<void>;

/** `n` sessions with `c` at once; returns the finished sessions and the wall time. */
async function batch(c: number, n: number, work: Work): Promise<{ done: Done[]; elapsedMs: number }> {
  const done: Done[] = [];
  let next = 0;
  const take = () => (next < n ? next++ : undefined);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(c, n) }, () => work(take, done)));
  return { done, elapsedMs: performance.now() - t0 };
}

function summarize(done: Done[], elapsedMs: number, expected: number): RunResult {
  // Correctness, outside the clock: every answer a success, a sample decrypted.
  let errors = done.filter((d) => !d.response.success).length + (expected - done.length);
  for (const d of done.slice(0, 8)) {
    const plain = decryptSecret(d.key.secretKey, d.response.decryption!, d.response.secret!);
    if (!Buffer.from(plain).equals(secret)) errors++;
  }
  const lat = done.map((d) => d.latencyMs).sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  return { sessionsPerSec: (done.length * 1000) / elapsedMs, p50: q(0.5), p95: q(0.95), p99: q(0.99), errors };
}

interface Side {
  readonly name: 'direct' | 'aproxy' | 'relay';
  readonly work: Work;
}

/** CPU of every process in the run, ms: the proxy, the relay, the KBS, this driver (the guests). */
async function cpuNow(): Promise<Record<'aproxy' | 'relay' | 'kbs' | 'driver', number>> {
  const u = process.cpuUsage();
  return {
    aproxy: await cpuMsOf(proxy.pid as number),
    relay: await cpuMsOf(relay.pid as number),
    kbs: await cpuMsOf(kbs.pid as number),
    driver: (u.user + u.system) / 1000,
  };
}

/**
 * N sessions through each side, in alternating rounds, so that drift in the
 * shared machine's speed falls on all alike; per side, the CPU each process
 * spent while that side ran.
 */
async function compare(c: number, sides: Side[], rounds = 4) {
  const per = Math.max(c, Math.ceil(N / rounds));
  const acc = new Map(sides.map((s) => [s.name, { done: [] as Done[], ms: 0, cpu: { aproxy: 0, relay: 0, kbs: 0, driver: 0 } }]));
  for (let sent = 0; sent < N; sent += per) {
    const n = Math.min(per, N - sent);
    for (const side of sides) {
      const a = acc.get(side.name)!;
      const before = await cpuNow();
      const r = await batch(c, n, side.work);
      const after = await cpuNow();
      for (const k of ['aproxy', 'relay', 'kbs', 'driver'] as const) a.cpu[k] += after[k] - before[k];
      a.done.push(...r.done);
      a.ms += r.elapsedMs;
    }
  }
  return Object.fromEntries(
    [...acc].map(([name, a]) => [
      name,
      { ...summarize(a.done, a.ms, N), cpuMsPerSession: Object.fromEntries(Object.entries(a.cpu).map(([k, v]) => [k, v / N])) },
    ]),
  ) as Record<Side['name'], RunResult & { cpuMsPerSession: Record<'aproxy' | 'relay' | 'kbs' | 'driver', number> }>;
}

/** Where the proxy's CPU goes: a --cpu-prof run of its own, self time summed by part of the code. */
async function profileProxy(c: number, n: number): Promise<Array<[string, number]>> {
  const profDir = join(dir, 'prof');
  const sock = join(dir, 'prof.sock');
  const child = spawnNode(APROXY_BIN, ['--protocol', 'kbs', '--url', kbsUrl, '--unix', sock, '--log-format', 'json', ...UNPACED], {
    nodeOptions: ['--cpu-prof', '--cpu-prof-dir', profDir],
    inheritStderr: true,
  });
  await waitForListening(sock);
  // Twice the sessions, so that start-up (module loading) is a small part; it is its own line below.
  await batch(c, 2 * n, (take, done) => proxiedWorker(sock, keys, take, done));
  child.kill('SIGTERM');
  await once(child, 'exit');
  const file = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) return [];
  if (values['keep-profile'] !== undefined) await writeFile(values['keep-profile'], await readFile(join(profDir, file)));
  const prof = JSON.parse(await readFile(join(profDir, file), 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { url: string; functionName: string; lineNumber: number; columnNumber: number } }>;
    samples: number[];
    timeDeltas: number[];
  };
  const parts = new Map(prof.nodes.map((nd) => [nd.id, partOf(sourceOf(nd.callFrame), nd.callFrame.functionName)]));
  const totals = new Map<string, number>();
  prof.samples.forEach((id, i) => {
    const part = parts.get(id) ?? 'other';
    totals.set(part, (totals.get(part) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const all = [...totals.values()].reduce((a, b) => a + b, 0);
  return [...totals]
    .filter(([k]) => k !== 'idle')
    .map(([k, v]) => [k, (100 * v) / (all - (totals.get('idle') ?? 0))] as [string, number])
    .sort((a, b) => b[1] - a[1]);
}

const bundleMaps = new Map<string, SourceMap | undefined>();

/** A frame's own source: through dist/bundle's source map, the file esbuild took it from (dist/src/…, node_modules/…). */
function sourceOf(frame: { url: string; lineNumber: number; columnNumber: number }): string {
  if (!frame.url.includes('/dist/bundle/')) return frame.url;
  if (!bundleMaps.has(frame.url)) {
    try {
      bundleMaps.set(frame.url, new SourceMap(JSON.parse(readFileSync(`${fileURLToPath(frame.url)}.map`, 'utf8'))));
    } catch {
      bundleMaps.set(frame.url, undefined);
    }
  }
  const entry = bundleMaps.get(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber);
  return entry !== undefined && 'originalSource' in entry ? entry.originalSource : frame.url;
}

function partOf(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)') return fn === '(idle)' ? 'idle' : 'runtime (program)';
  if (fn === '(garbage collector)') return 'garbage collection';
  for (const [re, name] of [
    [/\/src\/protocol\//, 'aproxy protocol (framing, JSON, schemas)'],
    [/\/src\/frontend\//, 'aproxy frontend (links, sessions)'],
    [/\/src\/backends\//, 'aproxy backend (KBS client)'],
    [/\/src\/service\//, 'aproxy service (composition, metrics, log)'],
    [/node_modules\/undici\//, 'HTTP client (undici)'],
    [
      /node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free|safe-stable-stringify)\//,
      'logging (pino)',
    ],
    [/node_modules\/(prom-client|tdigest|bintrees)\//, 'metrics (prom-client)'],
    [/node_modules\/zod\//, 'schemas (zod)'],
    [/^node:internal\/modules\//, 'module loading (start-up)'],
    [/^node:(net|stream|internal\/streams|internal\/stream_base)/, 'node streams and sockets'],
    [/^node:(events|internal\/event_target|internal\/abort_controller|timers|internal\/timers)/, 'node events, abort signals, timers'],
    [/^node:/, 'node core (other)'],
  ] as const) {
    if (re.test(url)) return name;
  }
  if (url === '')
    return /^(write|writev|writeString|writeBuffer|writeLatin1String|writeUtf8String)$/.test(fn)
      ? 'socket and pipe writes (native)'
      : 'native / builtins';
  return 'other';
}

// ---------- micro: frame decoding ----------

function decodeThroughput(chunkSize: number): number {
  const frame = encodeFrame(randomBytes(64 * 1024));
  const chunks: Buffer[] = [];
  for (let i = 0; i < frame.length; i += chunkSize) chunks.push(frame.subarray(i, i + chunkSize));
  const rounds = chunkSize === 1 ? 20 : 5000;
  const t0 = performance.now();
  let frames = 0;
  for (let r = 0; r < rounds; r++) {
    const d = new FrameDecoder();
    for (const ch of chunks) frames += d.push(ch).length;
  }
  const s = (performance.now() - t0) / 1000;
  if (frames !== rounds) throw new Error('decoder lost frames');
  return (rounds * frame.length) / s / 2 ** 20;
}

// ---------- main ----------

const dir = await mkdtemp(join(tmpdir(), 'aproxy-bench-'));
const unix = join(dir, 'p.sock');
// The KBS must not be the bottleneck: it encrypts once per guest key (every check still runs per session).
const kbs = spawnCli(
  [
    'test-kbs',
    '--measurement',
    measurement.toString('hex'),
    '--secret',
    secret.toString('hex'),
    '--port',
    '0',
    '--reuse-jwe-per-key',
    '--delay-ms',
    String(KBS_DELAY_MS),
  ],
  { inheritStderr: true },
);
const kbsUrl = (await waitForOutput(kbs, /http:\/\/127\.0\.0\.1:\d+/))[0];

// Start-up: process spawn to listening socket, against a bare `node -e` as baseline.
const tNode = performance.now();
const bare = spawn(process.execPath, ['-e', '']);
await once(bare, 'exit');
const nodeStartMs = performance.now() - tNode;
const tProxy = performance.now();
// As an operator runs it: JSON logs with the one line per session, metrics on.
const proxy = spawnCli(
  [
    '--protocol',
    'kbs',
    '--url',
    kbsUrl,
    '--unix',
    unix,
    '--log-format',
    'json',
    '--log-level',
    'info',
    '--metrics',
    '127.0.0.1:0',
    '--phase-timeout-ms',
    '120000',
    ...UNPACED,
  ],
  { inheritStderr: true },
);
await waitForListening(unix);
const startMs = performance.now() - tProxy;
const metricsUrl = await metricsUrlOf();
const relaySock = join(dir, 'relay.sock');
const relay = spawnNode(RELAY, [relaySock, kbsUrl], { inheritStderr: true });
await waitForOutput(relay, /listening/);
proxy.stdout?.removeAllListeners('data').resume(); // the driver reads and drops the proxy's log lines

console.log(
  `aproxy benchmark: ${N} sessions per run, sweep ${SWEEP.join(', ')}, ${process.arch}, node ${process.version}, 2 cores shared by KBS, proxy, relay and driver`,
);
const keys = Array.from({ length: 16 }, () => generateP521KeyPair());
const client = new KbsClient({ url: kbsUrl, requestTimeoutMs: 60_000 });
const sides: Side[] = [
  { name: 'direct', work: (take, done) => directWorker(client, keys, take, done) },
  { name: 'aproxy', work: (take, done) => proxiedWorker(unix, keys, take, done) },
  { name: 'relay', work: (take, done) => proxiedWorker(relaySock, keys, take, done) },
];
// Warm-up: JIT, pools, the KBS's per-key JWEs.
for (const side of sides) await batch(4, Math.max(64, N / 4), side.work);
const handlesBefore = await scrape(metricsUrl);

const rows: Array<Record<string, number>> = [];
for (const c of SWEEP) {
  const r = await compare(c, sides);
  rows.push({
    c,
    directPerSec: r.direct.sessionsPerSec,
    aproxyPerSec: r.aproxy.sessionsPerSec,
    relayPerSec: r.relay.sessionsPerSec,
    aproxyRatio: r.aproxy.sessionsPerSec / r.direct.sessionsPerSec,
    relayRatio: r.relay.sessionsPerSec / r.direct.sessionsPerSec,
    directP50: r.direct.p50,
    aproxyP50: r.aproxy.p50,
    relayP50: r.relay.p50,
    aproxyP99: r.aproxy.p99,
    aproxyCpuMsPerSession: r.aproxy.cpuMsPerSession.aproxy,
    relayCpuMsPerSession: r.relay.cpuMsPerSession.relay,
    cpuVsRelay: r.aproxy.cpuMsPerSession.aproxy / r.relay.cpuMsPerSession.relay,
    kbsCpuMsPerSession: r.direct.cpuMsPerSession.kbs,
    driverCpuMsPerSession: r.aproxy.cpuMsPerSession.driver,
    errors: r.direct.errors + r.aproxy.errors + r.relay.errors,
  });
}
while (((await scrape(metricsUrl)).aproxy_guest_connections ?? 0) > 0) await new Promise((r) => setTimeout(r, 20));
const handlesAfter = await scrape(metricsUrl);
const profile = await profileProxy(32, N);

// Idle links: RSS of an idle proxy, then with IDLE connections held open.
const idleBase = await procStats();
const idleSockets: Socket[] = [];
for (let i = 0; i < IDLE; i += 250) {
  const batch = await Promise.all(Array.from({ length: Math.min(250, IDLE - i) }, () => connectGuest(unix)));
  idleSockets.push(...batch);
}
while (((await scrape(metricsUrl)).aproxy_guest_connections ?? 0) < IDLE) await new Promise((r) => setTimeout(r, 20));
const idleFull = await procStats();
for (const s of idleSockets) s.destroy();

// The first guest after a start, against the relay started the same way (scripts/startup-bench.ts).
const startup = await measureStartup(kbsUrl, measurement);
const storm = await coldStorms(32, 300);

const decode1 = decodeThroughput(1);
const decodeWhole = decodeThroughput(64 * 1024 + 8);

const f = (n: number, d = 1, w = 8) => n.toFixed(d).padStart(w);
console.log(
  `\nthroughput (sessions/s) and ratio to direct; p50 latency ms; CPU ms per session of each process (KBS answers held ${KBS_DELAY_MS} ms)`,
);
console.log(
  '   C  direct/s  aproxy/s ratio  relay/s ratio   p50 dir/aprx/relay   aproxy CPU  relay CPU  aproxy/relay  KBS CPU  guests CPU  errors',
);
for (const r of rows) {
  console.log(
    `${String(r.c).padStart(4)} ${f(r.directPerSec!)}  ${f(r.aproxyPerSec!)} ${f(r.aproxyRatio!, 3, 5)} ${f(r.relayPerSec!)} ${f(r.relayRatio!, 3, 5)}  ${f(r.directP50!, 1, 6)}/${f(r.aproxyP50!, 1, 0)}/${f(r.relayP50!, 1, 0)}   ${f(r.aproxyCpuMsPerSession!, 3, 10)} ${f(r.relayCpuMsPerSession!, 3, 10)} ${f(r.cpuVsRelay!, 2, 12)} ${f(r.kbsCpuMsPerSession!, 3, 8)} ${f(r.driverCpuMsPerSession!, 3, 11)} ${f(r.errors!, 0, 7)}`,
  );
}
console.log(`\n${startupTable(startup)}`);
console.log(
  `\nboot storm right after a start (${storm.n} boots, C=${storm.c}, start-up included; medians of ${storm.trials}): CPU ms per boot relay ${storm.relayCpuMsPerBoot.toFixed(2)}, aproxy ${storm.aproxyCpuMsPerBoot.toFixed(2)}, ratio ${(storm.aproxyCpuMsPerBoot / storm.relayCpuMsPerBoot).toFixed(2)}\n` +
    `  aproxy without metrics and per-session log lines (what they cost, not a way to run it): ${storm.unobservedCpuMsPerBoot.toFixed(2)}, ratio ${(storm.unobservedCpuMsPerBoot / storm.relayCpuMsPerBoot).toFixed(2)}`,
);
console.log(`\nwhere aproxy's CPU goes (a --cpu-prof run, C=32, ${N} sessions; self time, idle excluded):`);
for (const [part, pct] of profile) console.log(`  ${pct.toFixed(1).padStart(5)} %  ${part}`);
const perConnKiB = ((idleFull.rssMiB - idleBase.rssMiB) * 1024) / IDLE;
console.log(
  `\nstart to listening: ${startMs.toFixed(0)} ms (bare node start ${nodeStartMs.toFixed(0)} ms, ratio ${(startMs / nodeStartMs).toFixed(2)})`,
);
console.log(
  `idle links: RSS ${idleBase.rssMiB.toFixed(1)} MiB idle, ${idleFull.rssMiB.toFixed(1)} MiB with ${IDLE} open (+${(idleFull.rssMiB - idleBase.rssMiB).toFixed(1)} MiB, ${perConnKiB.toFixed(2)} KiB per connection)`,
);
console.log(
  `frame decode, 64 KiB frame: ${decode1.toFixed(1)} MiB/s in 1-byte chunks, ${decodeWhole.toFixed(0)} MiB/s whole (ratio ${(decodeWhole / decode1).toFixed(0)})`,
);
console.log(
  `proxy handles before/after the sweep: ${JSON.stringify(handlesBefore.aproxy_nodejs_active_handles_total)} / ${JSON.stringify(handlesAfter.aproxy_nodejs_active_handles_total)}`,
);

// The vsock row: inside a QEMU guest with the vsock loopback transport (see scripts/bench-vsock.ts).
const vsock = await vsockRow();
if (typeof vsock === 'string') console.log(`\nvsock: not measured (${vsock})`);
else {
  console.log(
    `\nvsock vs unix, one proxy in a QEMU TCG guest (${vsock.sessions} sessions each, C=${vsock.concurrency}; ratios only, TCG absolutes mean nothing):\n` +
      `  sessions/s unix ${vsock.unix.sessionsPerSecond.toFixed(2)}, vsock ${vsock.vsock.sessionsPerSecond.toFixed(2)}, ratio ${vsock.throughputRatio.toFixed(2)}\n` +
      `  proxy CPU ms/session unix ${vsock.unix.proxyCpuMsPerSession.toFixed(1)}, vsock ${vsock.vsock.proxyCpuMsPerSession.toFixed(1)}, ratio ${vsock.cpuRatio.toFixed(2)}; failed ${vsock.unix.failed + vsock.vsock.failed}\n` +
      `  start to listening unix ${vsock.startupMs.unix.toFixed(0)} ms, vsock ${vsock.startupMs.vsock.toFixed(0)} ms; idle connection unix ${vsock.idleKiBPerConnection.unix.toFixed(1)} KiB, vsock ${vsock.idleKiBPerConnection.vsock.toFixed(1)} KiB`,
  );
}

const results = {
  date: new Date().toISOString(),
  node: process.version,
  sessionsPerRun: N,
  kbsDelayMs: KBS_DELAY_MS,
  sweep: rows,
  firstGuestAfterStart: startup,
  coldStorm: storm,
  startToListeningMs: startMs,
  bareNodeStartMs: nodeStartMs,
  idle: { connections: IDLE, baseRssMiB: idleBase.rssMiB, fullRssMiB: idleFull.rssMiB, perConnectionKiB: perConnKiB },
  frameDecodeMiBps: { oneByteChunks: decode1, wholeFrame: decodeWhole },
  proxyHandles: { before: handlesBefore.aproxy_nodejs_active_handles_total, after: handlesAfter.aproxy_nodejs_active_handles_total },
  cpuProfile: Object.fromEntries(profile),
  vsockInVm: vsock,
};
await writeFile(values.out ?? 'bench-results.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${values.out}`);

await client.close();
proxy.kill('SIGTERM');
kbs.kill('SIGTERM');
relay.kill('SIGTERM');
await Promise.all([once(proxy, 'exit'), once(kbs, 'exit'), once(relay, 'exit')]);
await rm(dir, { recursive: true, force: true });

interface VsockRow {
  sessions: number;
  concurrency: number;
  unix: { sessionsPerSecond: number; proxyCpuMsPerSession: number; failed: number };
  vsock: { sessionsPerSecond: number; proxyCpuMsPerSession: number; failed: number };
  throughputRatio: number;
  cpuRatio: number;
  startupMs: { unix: number; vsock: number };
  idleKiBPerConnection: { unix: number; vsock: number };
}

async function vsockRow(): Promise<VsockRow | string> {
  if (values['no-vsock']) return 'skipped with --no-vsock';
  const kit = findQemuKit();
  if ('missing' in kit) return kit.missing;
  const root = join(dirname(APROXY_BIN), '..');
  if (vsockAddonPath() === undefined) return 'no vsock addon (none built at npm ci)';
  const scratch = await mkdtemp(join(tmpdir(), 'aproxy-bench-vsock-'));
  try {
    const run = await runInVsockVm({
      kit,
      scratch,
      workDir: root,
      command: `${process.execPath} dist/scripts/bench-vsock.js --sessions 30 --concurrency 4 --rounds 3`,
    });
    const line = run.output.split('\n').find((l) => l.startsWith('{'));
    if (run.code !== 0 || line === undefined) return `the in-VM run failed: ${run.output.slice(-500)}`;
    return JSON.parse(line) as VsockRow;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * A boot storm the moment a fresh process listens (a host restart with VMs
 * waiting): `n` boots, `c` at once; the process's CPU per boot, start-up
 * included. aproxy as an operator runs it and the relay alternate, each with
 * a compile cache an untimed first start wrote (scripts/startup-bench.ts).
 * A third side is aproxy without metrics and without its per-session log
 * line (`--log-level warn`): not a way to run it, the measure of what the
 * two cost in a storm (docs/performance.md).
 */
async function coldStorms(c: number, n: number, trials = 3) {
  const cacheOf = (name: string) => ({ NODE_COMPILE_CACHE: join(dir, `${name}-storm-cache`) });
  const aproxyArgs = (sock: string) => ['--protocol', 'kbs', '--url', kbsUrl, '--unix', sock, '--log-format', 'json', ...UNPACED];
  const spawners = {
    aproxy: (sock: string) =>
      spawnCli([...aproxyArgs(sock), '--metrics', '127.0.0.1:0'], {
        inheritStderr: true,
        env: cacheOf('aproxy'),
      }),
    unobserved: (sock: string) =>
      spawnCli([...aproxyArgs(sock), '--log-level', 'warn'], {
        inheritStderr: true,
        env: cacheOf('unobserved'),
      }),
    relay: (sock: string) =>
      spawnNode(RELAY, [sock, kbsUrl], {
        inheritStderr: true,
        env: cacheOf('relay'),
      }),
  };
  const perBoot = { aproxy: [] as number[], unobserved: [] as number[], relay: [] as number[] };
  for (let i = 0; i <= trials; i++) {
    for (const name of ['aproxy', 'unobserved', 'relay'] as const) {
      const sock = join(dir, `storm-${name}.sock`);
      const child = spawners[name](sock);
      child.stdout?.resume();
      await waitForListening(sock);
      const { done } = await batch(c, n, (take, d) => proxiedWorker(sock, keys, take, d));
      if (done.length !== n) throw new Error(`${name}: ${done.length} of ${n} boots in the storm`);
      const cpuMs = await cpuMsOf(child.pid as number);
      child.kill('SIGKILL');
      await once(child, 'exit');
      await rm(sock, { force: true });
      if (i > 0) perBoot[name].push(cpuMs / n); // the first start of each fills its compile cache
    }
  }
  return {
    c,
    n,
    trials,
    aproxyCpuMsPerBoot: median(perBoot.aproxy),
    unobservedCpuMsPerBoot: median(perBoot.unobserved),
    relayCpuMsPerBoot: median(perBoot.relay),
  };
}

async function waitForListening(path: string): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function metricsUrlOf(): Promise<string> {
  return (await waitForOutput(proxy, /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/))[1] ?? '';
}
