import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { finished, runCli, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { buildInitramfs, findQemuKit, type QemuKit, QemuVm } from '../../scripts/qemu/vm.js';
import { createLogger } from '../../src/service/log.js';
import { startProxy } from '../../src/service/proxy.js';
import type { RunningProxy } from '../../src/service/running-proxy.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { TestKbs } from '../../src/testkit/test-kbs.js';
import { LogSink } from '../support/harness.js';

// Every byte between the simulated SVSM (COM1) and aproxy (COM3) crosses
// QEMU's 16550 UART emulation, a guest kernel's serial driver and back.
const found = findQemuKit();
const skip = 'missing' in found ? `QEMU path not testable here: ${found.missing}` : false;

// A skipped suite would vanish from the runner's totals: where it cannot run, it is one skipped test, with the reason.
if (skip) test('through real QEMU serial ports', { skip }, () => undefined);
else
  describe('through real QEMU serial ports', { timeout: 180_000 }, () => {
    const kit = found as QemuKit;
    const measurement = randomBytes(48);
    const secret = randomBytes(32);
    let dir = '';
    let initrd = '';
    let kbs: TestKbs;
    let url = '';

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'aproxy-qemu-'));
      initrd = join(dir, 'initrd.cpio.gz');
      buildInitramfs(initrd, kit.busybox);
      kbs = new TestKbs({ measurement, secret });
      url = await kbs.start();
    });
    after(async () => {
      await kbs?.close();
      await rm(dir, { recursive: true, force: true });
    });

    describe('one VM on -serial unix: (QEMU connects once, at start)', () => {
      let vm: QemuVm;
      let proxy: RunningProxy;
      let guest: SimulatedGuest;
      const outcomes: Array<{ outcome: string; reason?: string }> = [];
      const logs = new LogSink();

      before(async () => {
        const work = await mkdtemp(join(dir, 'a-'));
        const unix = join(work, 'proxy.sock');
        proxy = await startProxy({
          protocol: 'kbs',
          backendOptions: { url },
          unix,
          log: createLogger({ level: 'debug', destination: logs }),
        });
        proxy.server.on('session', (o: { outcome: string; reason?: string }) => outcomes.push(o));
        const connected = new Promise((r) => proxy.server.once('connection', r));
        vm = new QemuVm({ kit, initrd, workDir: work, com3: ['-serial', `unix:${unix}`] });
        const t0 = performance.now();
        await vm.start();
        await connected;
        guest = await SimulatedGuest.connect(vm.com1);
        process.stdout.write(`# VM booted to the relay in ${(performance.now() - t0).toFixed(0)} ms\n`);
      });
      after(async () => {
        guest?.close();
        await vm?.stop();
        await proxy?.close();
      });

      test('a full attestation: the simulated SVSM decrypts its secret', async (t) => {
        const r = await guest.boot({ measurement, expectSecret: secret });
        t.diagnostic(`attestation over the UART in ${r.totalMs.toFixed(0)} ms (negotiate ${r.negotiateMs.toFixed(0)} ms)`);
        assert.equal(r.error, undefined);
        assert.equal(r.secretMatches, true);
      });

      test('a second boot over the same QEMU serial link', async (t) => {
        const r = await guest.boot({ measurement, expectSecret: secret });
        t.diagnostic(`second boot in ${r.totalMs.toFixed(0)} ms`);
        assert.equal(r.secretMatches, true);
        assert.equal(proxy.server.connectionCount, 1, 'still the one connection QEMU opened');
      });

      test('a wrong measurement gets success:false, then a good boot succeeds', async (t) => {
        const bad = await guest.boot({ measurement: randomBytes(48) });
        assert.equal(bad.attested, false);
        const good = await guest.boot({ measurement, expectSecret: secret });
        t.diagnostic(`refusal in ${bad.totalMs.toFixed(0)} ms, next boot in ${good.totalMs.toFixed(0)} ms`);
        assert.equal(good.secretMatches, true);
        assert.deepEqual(
          outcomes.map((o) => o.outcome),
          ['success', 'success', 'failure', 'success'],
        );
      });

      test('what the UART did to the frames (reported, for the record)', (t) => {
        const frames = logs.records.filter((r) => r.msg === 'frame received') as Array<{ bytes: number; reads: number; ms: number }>;
        assert.equal(frames.length, 8, 'four boots, two guest frames each');
        for (const f of frames.slice(0, 2)) t.diagnostic(`guest frame of ${f.bytes} bytes arrived in ${f.reads} reads over ${f.ms} ms`);
        const biggest = frames.reduce((a, b) => (b.reads > a.reads ? b : a));
        t.diagnostic(`most fragmented: ${biggest.bytes} bytes in ${biggest.reads} reads over ${biggest.ms} ms`);
      });
    });

    test('reconnecting chardev: QEMU starts before the proxy, and the proxy is killed and restarted between boots', async (t) => {
      const work = await mkdtemp(join(dir, 'b-'));
      const unix = join(work, 'proxy.sock');
      // The arguments `aproxy qemu-args --qemu` prints for this QEMU, as an operator would paste them.
      const printed = await runCli(['qemu-args', '--unix', unix, '--qemu', kit.qemu]);
      assert.equal(printed.code, 0, printed.stderr);
      const vm = new QemuVm({ kit, initrd, workDir: work, com3: printed.stdout.trim().split(' ') });
      t.after(() => vm.stop());
      await vm.start(); // nothing listens on COM3 yet: QEMU keeps retrying
      const guest = await SimulatedGuest.connect(vm.com1);
      t.after(() => guest.close());

      const startProxyProcess = async () => {
        const p = spawnCli(['--protocol', 'kbs', '--url', url, '--unix', unix, '--force', '--log-format', 'json', '--log-level', 'debug']);
        t.after(() => p.kill('SIGKILL'));
        const t0 = performance.now();
        await waitForOutput(p, /"msg":"guest connected"/);
        return { p, reconnectMs: performance.now() - t0 };
      };

      const first = await startProxyProcess();
      const r1 = await guest.boot({ measurement, expectSecret: secret });
      assert.equal(r1.secretMatches, true);

      first.p.kill('SIGKILL'); // a crash: the stale socket file stays behind
      await finished(first.p);
      const second = await startProxyProcess(); // --force replaces the stale socket; QEMU reconnects
      const r2 = await guest.boot({ measurement, expectSecret: secret });
      t.diagnostic(
        `QEMU connected ${first.reconnectMs.toFixed(0)} ms after the first start, ${second.reconnectMs.toFixed(0)} ms after the restart; boots ${r1.totalMs.toFixed(0)} / ${r2.totalMs.toFixed(0)} ms`,
      );
      assert.equal(r2.error, undefined);
      assert.equal(r2.secretMatches, true);
      second.p.kill('SIGTERM');
      assert.equal((await finished(second.p)).code, 0);
    });
  });
