/**
 * Benchmark: the proxy's cost on top of the KBS when many guests boot at once.
 *
 *   npm run bench -- [--sessions 256] [--sweep 1,8,32,128] [--idle 10000] [--out bench-results.json] [--no-vsock]
 *
 * Three processes: the built-in test KBS and the proxy (each `bin/aproxy`,
 * as an operator runs them) and this driver. Guest-side crypto stays out of
 * the proxy: keys are generated before the clock starts, and the secrets are
 * decrypted (for a sample) after it stops. For each concurrency C it runs N
 * sessions through the proxy and the same N sessions directly against the
 * KBS with the proxy's own HTTP client (KbsClient: one pooled undici pool),
 * in alternating rounds, and prints throughput, latency percentiles, the
 * ratio, and the proxy's CPU time per session and RSS (from its metrics).
 * Last, the vsock row: vsock against Unix in one proxy inside a QEMU guest
 * (scripts/bench-vsock.ts), where the machine has QEMU and the addon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { KbsClient } from '../src/backends/kbs/client.js';
import { findQemuKit, runInVsockVm } from './qemu/vm.js';
import { FrameReader } from '../src/frontend/frame-reader.js';
import {
  KBS_NEGOTIATION_PARAMS,
  buildSyntheticReport,
  decryptSecret,
  encodeFrame,
  FrameDecoder,
  generateP521KeyPair,
  jweToAttestationResponse,
  parseAttestationResponse,
  parseNegotiationResponse,
  reportDataDigest,
  serializeAttestationRequest,
  serializeNegotiationRequest,
  type AttestationRequest,
  type AttestationResponse,
  type P521KeyPair,
} from '../src/protocol/index.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '256' },
    sweep: { type: 'string', default: '1,8,32,128' },
    idle: { type: 'string', default: '10000' },
    out: { type: 'string', default: 'bench-results.json' },
    'no-vsock': { type: 'boolean', default: false },
  },
});
const N = Number(values.sessions);
const SWEEP = (values.sweep ?? '').split(',').map(Number);
const IDLE = Number(values.idle);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'aproxy');

const measurement = randomBytes(48);
const secret = randomBytes(32);

// ---------- processes ----------

const children = new Set<ChildProcess>();
// Whatever happens to the driver, the KBS and the proxy go with it.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function spawnAproxy(args: string[]): ChildProcess & { out: string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const c = Object.assign(child, { out: '' });
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (c.out += d));
  return c;
}

async function waitFor(child: ChildProcess & { out: string }, re: RegExp): Promise<RegExpExecArray> {
  for (;;) {
    const m = re.exec(child.out);
    if (m) return m;
    await once(child.stdout as NodeJS.EventEmitter, 'data');
  }
}

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
    const m = /^(aproxy_nodejs_active_(?:handles|resources)_total|aproxy_sessions_total\{[^}]*\}|aproxy_guest_connections|aproxy_process_cpu_seconds_total|aproxy_process_resident_memory_bytes) (\S+)$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
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
    const key = keys[i] as P521KeyPair;
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
  const ctx = { signal: new AbortController().signal, observe: () => undefined, annotate: () => undefined, deadline: Number.POSITIVE_INFINITY };
  for (let i = take(); i !== undefined; i = take()) {
    const key = keys[i] as P521KeyPair;
    const t0 = performance.now();
    const { challenge, cookie } = await client.auth('snp', ctx);
    const req = evidenceFor(key, challenge, KBS_NEGOTIATION_PARAMS as typeof KBS_NEGOTIATION_PARAMS);
    const token = await client.attest(cookie, req, ctx);
    const jwe = await client.resource(cookie, 'default/sample/test', ctx);
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

/**
 * N sessions each way, in alternating rounds (proxied, direct, proxied, …),
 * so that drift in the shared machine's speed falls on both sides alike.
 */
async function compare(c: number, proxiedWork: Work, directWork: Work, rounds = 4) {
  const per = Math.max(c, Math.ceil(N / rounds));
  const sides = { proxied: { done: [] as Done[], ms: 0 }, direct: { done: [] as Done[], ms: 0 } };
  let proxyCpuMs = 0;
  let rssMiB = 0;
  for (let sent = 0; sent < N; sent += per) {
    const n = Math.min(per, N - sent);
    const cpu0 = await procStats();
    const p = await batch(c, n, proxiedWork);
    const cpu1 = await procStats();
    proxyCpuMs += cpu1.cpuMs - cpu0.cpuMs;
    rssMiB = Math.max(rssMiB, cpu1.rssMiB);
    const d = await batch(c, n, directWork);
    sides.proxied.done.push(...p.done);
    sides.proxied.ms += p.elapsedMs;
    sides.direct.done.push(...d.done);
    sides.direct.ms += d.elapsedMs;
  }
  return {
    proxied: summarize(sides.proxied.done, sides.proxied.ms, N),
    direct: summarize(sides.direct.done, sides.direct.ms, N),
    proxyCpuMsPerSession: proxyCpuMs / N,
    proxyRssMiB: rssMiB,
  };
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
const kbs = spawnAproxy(['test-kbs', '--measurement', measurement.toString('hex'), '--secret', secret.toString('hex'), '--port', '0']);
const kbsUrl = (await waitFor(kbs, /http:\/\/127\.0\.0\.1:\d+/))[0];

// Start-up: process spawn to listening socket, against a bare `node -e` as baseline.
const tNode = performance.now();
const bare = spawn(process.execPath, ['-e', '']);
await once(bare, 'exit');
const nodeStartMs = performance.now() - tNode;
const tProxy = performance.now();
const proxy = spawnAproxy(['--protocol', 'kbs', '--url', kbsUrl, '--unix', unix, '--log-format', 'json', '--log-level', 'info', '--metrics', '127.0.0.1:0', '--phase-timeout-ms', '120000']);
await waitForListening(unix);
const startMs = performance.now() - tProxy;
const metricsUrl = await metricsUrlOf();

console.log(`aproxy benchmark: ${N} sessions per run, sweep ${SWEEP.join(', ')}, ${process.arch}, node ${process.version}, 2 cores shared by KBS, proxy and driver`);
const keys = Array.from({ length: N }, () => generateP521KeyPair());
const client = new KbsClient({ url: kbsUrl, requestTimeoutMs: 60_000 });

const proxiedWork: Work = (take, done) => proxiedWorker(unix, keys, take, done);
const directWork: Work = (take, done) => directWorker(client, keys, take, done);
// Warm-up: JIT, pools, KBS caches.
await batch(4, N, proxiedWork);
await batch(4, N, directWork);
const handlesBefore = await scrape(metricsUrl);

const rows: Array<Record<string, number>> = [];
for (const c of SWEEP) {
  const { proxied, direct, proxyCpuMsPerSession, proxyRssMiB } = await compare(c, proxiedWork, directWork);
  rows.push({
    c,
    proxiedPerSec: proxied.sessionsPerSec,
    directPerSec: direct.sessionsPerSec,
    ratio: proxied.sessionsPerSec / direct.sessionsPerSec,
    proxiedP50: proxied.p50,
    proxiedP95: proxied.p95,
    proxiedP99: proxied.p99,
    directP50: direct.p50,
    directP95: direct.p95,
    directP99: direct.p99,
    addedP50: proxied.p50 - direct.p50,
    proxyCpuMsPerSession,
    proxyRssMiB,
    errors: proxied.errors + direct.errors,
  });
}
while (((await scrape(metricsUrl)).aproxy_guest_connections ?? 0) > 0) await new Promise((r) => setTimeout(r, 20));
const handlesAfter = await scrape(metricsUrl);

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

const decode1 = decodeThroughput(1);
const decodeWhole = decodeThroughput(64 * 1024 + 8);

const f = (n: number, d = 1) => n.toFixed(d).padStart(8);
console.log('\n   C  proxied/s  direct/s  ratio   p50 ms (prx/dir)   p95 ms (prx/dir)   p99 ms (prx/dir)   +p50 ms  proxy CPU ms/sess  proxy RSS MiB  errors');
for (const r of rows) {
  console.log(
    `${String(r.c).padStart(4)} ${f(r.proxiedPerSec!)}  ${f(r.directPerSec!)} ${f(r.ratio!, 3)} ${f(r.proxiedP50!)}/${f(r.directP50!).trim()}  ${f(r.proxiedP95!)}/${f(r.directP95!).trim()}  ${f(r.proxiedP99!)}/${f(r.directP99!).trim()}  ${f(r.addedP50!, 2)} ${f(r.proxyCpuMsPerSession!, 3)}          ${f(r.proxyRssMiB!)}  ${f(r.errors!, 0)}`,
  );
}
const perConnKiB = ((idleFull.rssMiB - idleBase.rssMiB) * 1024) / IDLE;
console.log(`\nstart to listening: ${startMs.toFixed(0)} ms (bare node start ${nodeStartMs.toFixed(0)} ms, ratio ${(startMs / nodeStartMs).toFixed(2)})`);
console.log(`idle links: RSS ${idleBase.rssMiB.toFixed(1)} MiB idle, ${idleFull.rssMiB.toFixed(1)} MiB with ${IDLE} open (+${(idleFull.rssMiB - idleBase.rssMiB).toFixed(1)} MiB, ${perConnKiB.toFixed(2)} KiB per connection)`);
console.log(`frame decode, 64 KiB frame: ${decode1.toFixed(1)} MiB/s in 1-byte chunks, ${decodeWhole.toFixed(0)} MiB/s whole (ratio ${(decodeWhole / decode1).toFixed(0)})`);
console.log(`proxy handles before/after the sweep: ${JSON.stringify(handlesBefore.aproxy_nodejs_active_handles_total)} / ${JSON.stringify(handlesAfter.aproxy_nodejs_active_handles_total)}`);

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
  sweep: rows,
  startToListeningMs: startMs,
  bareNodeStartMs: nodeStartMs,
  idle: { connections: IDLE, baseRssMiB: idleBase.rssMiB, fullRssMiB: idleFull.rssMiB, perConnectionKiB: perConnKiB },
  frameDecodeMiBps: { oneByteChunks: decode1, wholeFrame: decodeWhole },
  proxyHandles: { before: handlesBefore.aproxy_nodejs_active_handles_total, after: handlesAfter.aproxy_nodejs_active_handles_total },
  vsockInVm: vsock,
};
await writeFile(values.out ?? 'bench-results.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${values.out}`);

await client.close();
proxy.kill('SIGTERM');
kbs.kill('SIGTERM');
await Promise.all([once(proxy, 'exit'), once(kbs, 'exit')]);
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
  const root = join(dirname(BIN), '..');
  if (!existsSync(join(root, 'native', 'vsock', 'build', 'Release', 'vsock.node'))) return 'the vsock addon is not built';
  const scratch = await mkdtemp(join(tmpdir(), 'aproxy-bench-vsock-'));
  try {
    const run = await runInVsockVm({ kit, scratch, workDir: root, command: 'node dist/scripts/bench-vsock.js --sessions 30 --concurrency 4 --rounds 3' });
    const line = run.output.split('\n').find((l) => l.startsWith('{'));
    if (run.code !== 0 || line === undefined) return `the in-VM run failed: ${run.output.slice(-500)}`;
    return JSON.parse(line) as VsockRow;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
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
  return (await waitFor(proxy, /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/))[1] ?? '';
}
