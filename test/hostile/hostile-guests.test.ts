import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, type TestContext, test } from 'node:test';
import { finished, runCli, spawnSocketActivated } from '../../scripts/processes.js';
import { encodeFrame } from '../../src/protocol/index.js';
import { createLogger } from '../../src/service/log.js';
import { OPEN_FILES_RESERVE } from '../../src/service/open-files.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startRig, startTestKbs, tempDir } from '../support/harness.js';
import { seriesValue, startProxyProcess } from '../support/proxy-process.js';
import { NEGOTIATE, RawGuest } from '../support/raw-guest.js';

/** The proxy's heap in these tests: a guest that could grow it without bound makes it abort. */
const HEAP_MIB = 256;
/** What the proxy process may reach at its peak under these floods: a Node process serving guests, plus a frame. */
const PEAK_RSS_BOUND_MIB = 200;

/** A guest socket that writes and never reads. */
async function neverReading(path: string, t: TestContext): Promise<Socket> {
  const s = connect(path);
  await once(s, 'connect');
  s.pause();
  s.on('error', () => undefined);
  t.after(() => s.destroy());
  return s;
}

/** Writes `frames` copies of `frame` as fast as the proxy takes them, without waiting for it. */
function flood(s: Socket, frame: Buffer, frames: number): void {
  let sent = 0;
  const more = () => {
    while (sent < frames && !s.destroyed) {
      sent++;
      if (!s.write(frame)) return void s.once('drain', more);
    }
  };
  more();
}

async function bootGood(path: string, measurement: Buffer, secret: Buffer, t: TestContext): Promise<number> {
  const g = await SimulatedGuest.connect(path);
  t.after(() => g.close());
  const r = await g.boot({ measurement, expectSecret: secret });
  assert.equal(r.error, undefined);
  assert.equal(r.secretMatches, true);
  return r.totalMs;
}

describe('a hostile guest costs the proxy a bounded amount, and the other guests nothing', () => {
  test('a guest that floods small frames and never reads its answers stops being read; the proxy stays small and serves others', async (t) => {
    const { url, measurement, secret } = await startTestKbs(t);
    const dir = await tempDir(t);
    const [bad, good] = [join(dir, 'bad.sock'), join(dir, 'good.sock')];
    // A budget no test reaches: what stops this guest is its own unread answers.
    const proxy = await startProxyProcess(
      t,
      ['--protocol', 'kbs', '--url', url, '--unix', bad, '--unix', good, '--sessions-per-minute', '1000000', '--session-burst', '1000000'],
      {
        nodeArgs: [`--max-old-space-size=${HEAP_MIB}`],
      },
    );
    const s = await neverReading(bad, t);
    flood(s, encodeFrame('garbage!!'), 500_000);
    const stalled = await proxy.waitForRecord((r) => typeof r.msg === 'string' && r.msg.startsWith('guest is not taking its answers'));
    assert.equal(stalled.listener, bad);
    await bootGood(good, measurement, secret, t);
    assert.ok(s.writableLength > 0, 'the flooder still has bytes the proxy has not read');
    assert.ok(proxy.peakRssMiB() < PEAK_RSS_BOUND_MIB, `peak RSS ${proxy.peakRssMiB().toFixed(0)} MiB`);
    assert.equal(proxy.child.exitCode, null, 'the proxy is running');
  });

  test('a guest that floods 1 MiB frames is paced after its burst; the proxy holds about one frame and serves others', async (t) => {
    const { url, measurement, secret } = await startTestKbs(t);
    const dir = await tempDir(t);
    const [bad, good] = [join(dir, 'bad.sock'), join(dir, 'good.sock')];
    const proxy = await startProxyProcess(
      t,
      ['--protocol', 'kbs', '--url', url, '--unix', bad, '--unix', good, '--metrics', '127.0.0.1:0'],
      {
        nodeArgs: [`--max-old-space-size=${HEAP_MIB}`],
      },
    );
    const s = await neverReading(bad, t);
    flood(s, encodeFrame(Buffer.alloc(1 << 20, 0x41)), 2000);
    await proxy.waitForRecord((r) => typeof r.msg === 'string' && r.msg.startsWith('guest is over its session budget'));
    await bootGood(good, measurement, secret, t);
    const scrape = await proxy.scrape();
    assert.equal(seriesValue(scrape, 'aproxy_guest_links_waiting', { listener: bad, reason: 'session_budget' }), 1);
    assert.ok(seriesValue(scrape, 'aproxy_guest_sessions_paced_total', { listener: bad }) >= 1);
    assert.equal(
      seriesValue(scrape, 'aproxy_sessions_total', { listener: bad }),
      10,
      'the default burst, then nothing until the budget allows',
    );
    assert.ok(s.writableLength > 0, 'the flooder still has bytes the proxy has not read');
    assert.ok(proxy.peakRssMiB() < PEAK_RSS_BOUND_MIB, `peak RSS ${proxy.peakRssMiB().toFixed(0)} MiB`);
  });

  test('guests that would take every open file are refused past the cap, logged once; the reserve keeps an admitted guest served', async (t) => {
    const { url, measurement, secret } = await startTestKbs(t);
    const dir = await tempDir(t);
    const [bad, good] = [join(dir, 'bad.sock'), join(dir, 'good.sock')];
    const OPEN_FILES = 320;
    const proxy = await startProxyProcess(
      t,
      ['--protocol', 'kbs', '--url', url, '--unix', bad, '--unix', good, '--metrics', '127.0.0.1:0'],
      {
        openFiles: OPEN_FILES,
      },
    );
    const ready = proxy.records().find((r) => r.msg === 'aproxy ready');
    const cap = OPEN_FILES - OPEN_FILES_RESERVE;
    assert.equal(ready?.maxGuestConnections, cap, 'the ready line says the cap');
    // A guest that connected first, then a flood of idle connections from a local user with access to a socket.
    const connected = await SimulatedGuest.connect(good);
    t.after(() => connected.close());
    const flood: Socket[] = [];
    t.after(() => {
      for (const s of flood) s.destroy();
    });
    const refused = proxy.waitForRecord((r) => r.reason === 'open_files');
    for (let i = 0; i < cap + 20; i++) flood.push(await neverReading(bad, t));
    const line = await refused;
    assert.match(String(line.msg), /refusing a guest connection: guests hold all the connections the open-file limit allows/);
    const r = await connected.boot({ measurement, expectSecret: secret });
    assert.equal(r.secretMatches, true, 'the reserve left files for the server connection');
    const scrape = await proxy.scrape();
    assert.ok(seriesValue(scrape, 'aproxy_guest_refusals_total', { listener: bad, reason: 'open_files' }) >= 20);
    assert.equal(proxy.records().filter((x) => x.reason === 'open_files').length, 1, 'one line for the burst');
    for (const s of flood) s.destroy();
    await bootGood(good, measurement, secret, t);
    assert.equal(proxy.child.exitCode, null, 'the proxy is running');
  });

  test('a NegotiationRequest flood on one link churns no server connections while other guests boot', async (t) => {
    const dir = await tempDir(t);
    const [bad, good] = [join(dir, 'bad.sock'), join(dir, 'good.sock')];
    const rig = await startRig(t, { proxy: { unix: [bad, good], guestLimits: {} } });
    const paced = once(rig.proxy.server, 'paced');
    const s = await neverReading(bad, t);
    const frame = encodeFrame(NEGOTIATE);
    flood(s, frame, 5000);
    await paced;
    const connectionsBefore = rig.kbs.stats.connections;
    const latencies = await Promise.all(Array.from({ length: 5 }, () => bootGood(good, rig.measurement, rig.secret, t)));
    // One /auth per admitted session: the burst of 10, plus the five good guests.
    assert.ok(rig.kbs.stats.auth <= 10 + 5, `${rig.kbs.stats.auth} /auth requests`);
    assert.ok(rig.kbs.stats.connections <= 6, `${rig.kbs.stats.connections} KBS connections opened: pooled ones are reused, not torn down`);
    assert.ok(rig.kbs.stats.connections - connectionsBefore <= 5);
    // Their latency under the flood is measured by `npm run hostile`, not asserted here.
    assert.equal(latencies.length, 5);
    const flooded = rig.outcomes.filter((o) => o.listener === bad);
    assert.ok(flooded.length <= 11, `${flooded.length} sessions from the flooder`);
  });

  test('repeated failures on one link are logged once per burst, then summarised with a count when the burst ends, not when the link closes', async (t) => {
    const rig = await startRig(t, { proxy: { guestLimits: { sessionsPerMinute: 1_000_000, sessionBurst: 1_000_000 } } });
    const g = await RawGuest.connect(rig.unix);
    for (let i = 0; i < 200; i++) g.send('not json');
    for (let i = 0; i < 200; i++) assert.notEqual(await g.next(), null);
    const failures = () =>
      rig.logs.records.filter((r) => r.level === 40 && typeof r.msg === 'string' && r.msg.startsWith('session failure'));
    assert.equal(failures().length, 1, 'one line for the burst so far');
    // The VM's bursts outlive its link: a reconnect must not start a new burst with a line of its own.
    const closed = once(rig.proxy.server, 'disconnect');
    g.destroy();
    await closed;
    assert.equal(failures().length, 1, 'closing the link ends no burst');
    let summary = failures().find((r) => r.repeated !== undefined);
    while (summary === undefined) {
      await once(rig.logs, 'record');
      summary = failures().find((r) => r.repeated !== undefined);
    }
    assert.equal(summary.repeated, 199);
    assert.match(String(summary.msg), /199 more like it/);
  });

  /** A proxy whose stdout nobody reads, booted until its log buffer dropped lines. */
  async function stalledProxy(t: TestContext) {
    const { url, measurement, secret } = await startTestKbs(t);
    const sock = join(await tempDir(t), 'proxy.sock');
    const proxy = await startProxyProcess(t, [
      '--protocol',
      'kbs',
      '--url',
      url,
      '--unix',
      sock,
      '--metrics',
      '127.0.0.1:0',
      '--log-level',
      'debug',
      '--log-buffer-bytes',
      '16384',
      '--sessions-per-minute',
      '1000000',
      '--session-burst',
      '1000000',
    ]);
    // Stop reading its stdout: the pipe and our stream buffer fill, then the proxy's log buffer.
    proxy.child.stdout?.pause();
    proxy.child.stdout?.removeAllListeners('data');
    const g = await SimulatedGuest.connect(sock);
    t.after(() => g.close());
    let dropped = 0;
    for (let round = 0; round < 100 && dropped === 0; round++) {
      for (let i = 0; i < 20; i++) {
        const r = await g.boot({ measurement, expectSecret: secret });
        assert.equal(r.secretMatches, true, 'guests are served while the log is stuck');
      }
      dropped = seriesValue(await proxy.scrape(), 'aproxy_log_lines_dropped_total');
    }
    assert.ok(dropped > 0, 'lines were dropped and counted');
    return { proxy, sock };
  }

  test('a stdout that does not keep up costs dropped log lines, routine ones first, counted and said once it drains; not memory or a blocked proxy', async (t) => {
    const { proxy, sock } = await stalledProxy(t);
    assert.ok(proxy.peakRssMiB() < PEAK_RSS_BOUND_MIB);
    // A guest that fails while the buffer is full of routine lines: its warning is kept.
    const victim = await RawGuest.connect(sock);
    t.after(() => victim.destroy());
    victim.send('not json');
    assert.notEqual(await victim.next(), null, 'it got the failure answer');
    // Once stdout is read again, the log itself says what it lost (no metrics needed to know).
    let after = '';
    const said = new Promise<void>((resolve) =>
      proxy.child.stdout?.on('data', (d: Buffer) => {
        after += d.toString('utf8');
        if (/log lines were dropped while stdout did not keep up/.test(after)) resolve();
      }),
    );
    proxy.child.stdout?.resume();
    await said;
    assert.match(
      after,
      /"level":40,[^\n]*"msg":"session failure: [^\n]*INVALID_JSON|"level":40,[^\n]*INVALID_JSON[^\n]*"msg":"session failure/,
    );
  });

  test('SIGTERM stops the proxy while stdout is stalled: it exits 0 after a bounded wait for the log', async (t) => {
    const { proxy } = await stalledProxy(t);
    const exited = once(proxy.child, 'exit') as Promise<[number | null, string | null]>;
    proxy.child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null]);
  });

  test('pretty logs escape control characters from guests and servers: one event is one line, no terminal sequence gets through', () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString('utf8');
        cb();
      },
    });
    const log = createLogger({ format: 'pretty', destination: sink, level: 'info' });
    // What a guest could name an evidence variant, and a KBS error body could echo back.
    const evil = 'snp\u001b[31mRED\u001b]52;c;ZXZpbA==\u0007\r\nFORGED 12:00:00.000 INFO  session success\u2028\u009b2J\u202eabc';
    log.warn({ detail: evil, nested: { body: evil } }, `session failure: unknown evidence variant ${evil}`);
    log.info({}, 'next event');
    const lines = out.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2, out);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may reach the terminal
    assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202e]/);
    assert.match(lines[0] ?? '', /unknown evidence variant snp\\x1b\[31mRED\\x1b\]52;c;ZXZpbA==\\x07\\x0d\\x0aFORGED/);
    assert.match(lines[0] ?? '', /\\u2028\\x9b2J\\u202eabc/);
  });

  test('metric series do not grow with the number of guests', async (t) => {
    const rig = await startRig(t, { backend: { resource: 'vtpm/keys/{host_data}' }, proxy: { metrics: '127.0.0.1:0' } });
    const series = async () =>
      (await (await fetch(rig.proxy.metricsUrl as string)).text())
        .split('\n')
        .filter((l) => l.startsWith('aproxy_') && !l.startsWith('aproxy_process') && !l.startsWith('aproxy_nodejs')).length;
    const boot = async (n: number) => {
      const g = await SimulatedGuest.connect(rig.unix);
      t.after(() => g.close());
      for (let i = 0; i < n; i++) await g.boot({ measurement: rig.measurement, hostData: Buffer.alloc(32, i + 1) });
    };
    await boot(3);
    const after3 = await series();
    await boot(9);
    assert.equal(await series(), after3, 'nine more guests, each with its own resource path, add no series');
    const scrape = await (await fetch(rig.proxy.metricsUrl as string)).text();
    assert.match(scrape, /endpoint="GET \/kbs\/v0\/resource\/vtpm\/keys\/\{host_data\}"/);
  });

  test('an inherited TCP socket is refused at start, with what it is', async () => {
    const child = spawnSocketActivated([{ tcpPort: 0 }], ['--protocol', 'kbs', '--url', 'http://127.0.0.1:9']);
    const r = await finished(child);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0] ?? '',
      /inherited fd 3 is a listening TCP\/IPv4 stream socket; aproxy serves only listening Unix or vsock stream sockets/,
    );
  });
});

describe('plugins are trusted code, but their mistakes do not take the proxy down', () => {
  const plugin = (body: string) => `
export default {
  apiVersion: 2,
  name: 'faulty',
  create: () => ({
    openSession: () => ({
      async negotiate() { ${body} return { challenge: new Uint8Array(32), params: [] }; },
      async attest() { return { success: false }; },
      close() {},
    }),
    close() {},
  }),
};
`;

  test('a plugin whose module never finishes loading fails start-up with a clear error', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'hang.mjs');
    await writeFile(file, `await new Promise(() => {});\n${plugin('')}`);
    const r = await runCli(['--protocol', file, '--unix', join(dir, 'p.sock'), '--backend-call-timeout-ms', '300']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /did not finish loading within 300 ms/);
  });

  test("a plugin's unhandled rejection and a throw in its timer are logged with the plugin named; other guests are served", async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'faulty.mjs');
    await writeFile(
      file,
      plugin(`Promise.reject(new Error('forgotten promise')); setTimeout(() => { throw new Error('timer threw'); }, 0);`),
    );
    const sock = join(dir, 'p.sock');
    const proxy = await startProxyProcess(t, ['--protocol', file, '--unix', sock]);
    const first = await RawGuest.connect(sock);
    t.after(() => first.destroy());
    first.send(NEGOTIATE);
    assert.notEqual(await first.next(), null);
    const rejection = await proxy.waitForRecord((r) => r.fault === 'unhandled rejection');
    assert.equal(rejection.plugin, file);
    assert.match(String(rejection.msg), /forgotten promise/);
    const thrown = await proxy.waitForRecord((r) => r.fault === 'uncaught exception');
    assert.equal(thrown.plugin, file);
    const second = await RawGuest.connect(sock);
    t.after(() => second.destroy());
    second.send(NEGOTIATE);
    assert.notEqual(await second.next(), null, 'the proxy still serves guests');
    assert.equal(proxy.child.exitCode, null);
  });

  test("an uncaught exception from aproxy's own code is logged fatal, and the process exits 70 once the line is written", async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'trips.mjs');
    // The plugin only schedules the call: every frame of the throw is aproxy's (a report too short to parse).
    await writeFile(
      file,
      `import { parseSnpReport } from 'aproxy/plugin';\n${plugin('setTimeout(parseSnpReport, 0, new Uint8Array(1));')}`,
    );
    const sock = join(dir, 'p.sock');
    const proxy = await startProxyProcess(t, ['--protocol', file, '--unix', sock]);
    const exited = once(proxy.child, 'exit') as Promise<[number | null, string | null]>;
    const g = await RawGuest.connect(sock);
    t.after(() => g.destroy());
    g.send(NEGOTIATE);
    assert.deepEqual(await exited, [70, null]);
    const fatal = proxy.records().find((r) => r.level === 60);
    assert.match(String(fatal?.msg), /^internal fault, exiting: /);
    assert.equal(fatal?.plugin, undefined);
  });
});
