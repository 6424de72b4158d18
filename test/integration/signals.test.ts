import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { finished, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { startTestKbs, tempDir } from '../support/harness.js';

/** Whether a process has a handler for SIGHUP now (SigCgt in /proc: bit 0 is signal 1). */
function catchesHangup(pid: number): boolean {
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
  return (BigInt(`0x${mask}`) & 1n) === 1n;
}

describe("signals at every moment of a proxy's life", () => {
  test('a SIGHUP as soon as the process catches one, before it is ready, is applied once it has started, not fatal', async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    await writeFile(config, JSON.stringify({ protocol: 'kbs', url, unix: join(dir, 'a.sock'), 'log-format': 'json' }));
    const proc = spawnCli(['--config', config]);
    t.after(() => proc.kill('SIGKILL'));
    // The earliest moment a signal can be anything but fatal: Node's default for SIGHUP ends the process.
    while (!catchesHangup(proc.pid as number)) await new Promise((r) => setImmediate(r));
    const readyBefore = proc.output.stdout.includes('"aproxy ready"');
    proc.kill('SIGHUP');
    await waitForOutput(proc, /"msg":"configuration reloaded: 0 listeners added, 0 removed, 0 changed"/);
    if (!readyBefore) assert.match(proc.output.stdout, /SIGHUP while starting: the configuration is re-read once the proxy has started/);
    assert.equal(proc.exitCode, null, 'still running');
    proc.kill('SIGTERM');
    assert.equal((await finished(proc)).code, 0);
  });

  test('SIGTERM right after a SIGHUP that adds a listener: the process stops, and no socket of the reload is left', async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    for (let i = 0; i < 5; i++) {
      const config = join(dir, `aproxy-${i}.json`);
      const first = join(dir, `first-${i}.sock`);
      const added = join(dir, `added-${i}.sock`);
      await writeFile(config, JSON.stringify({ protocol: 'kbs', url, unix: first, 'log-format': 'json' }));
      const proc = spawnCli(['--config', config]);
      t.after(() => proc.kill('SIGKILL'));
      await waitForOutput(proc, /"msg":"aproxy ready"/);
      await writeFile(config, JSON.stringify({ protocol: 'kbs', url, unix: [first, added], 'log-format': 'json' }));
      proc.kill('SIGHUP');
      proc.kill('SIGTERM');
      const end = await finished(proc);
      assert.equal(end.code, 0, end.stdout + end.stderr);
      assert.equal(existsSync(added), false, `run ${i}: the added socket is gone\n${end.stdout}`);
      assert.equal(existsSync(first), false, `run ${i}: the first socket is gone`);
      // The reload either finished before the stop began, or was refused for it: never applied after "stopped".
      const lines = end.stdout.split('\n');
      const stopped = lines.findIndex((l) => l.includes('"msg":"stopped"'));
      const reloaded = lines.findIndex((l) => l.includes('configuration reloaded'));
      assert.ok(stopped >= 0);
      assert.ok(reloaded < stopped, `run ${i}: no reload applied after the stop\n${end.stdout}`);
    }
  });

  test('SIGHUP while stopping is logged and not applied', async (t) => {
    const dir = await tempDir(t);
    const { url } = await startTestKbs(t);
    const config = join(dir, 'aproxy.json');
    await writeFile(
      config,
      JSON.stringify({ protocol: 'kbs', url, unix: join(dir, 'a.sock'), 'log-format': 'json', 'shutdown-grace-ms': 0 }),
    );
    const proc = spawnCli(['--config', config]);
    t.after(() => proc.kill('SIGKILL'));
    await waitForOutput(proc, /"msg":"aproxy ready"/);
    proc.kill('SIGTERM');
    await waitForOutput(proc, /"msg":"stopping/);
    if (proc.exitCode === null) proc.kill('SIGHUP');
    const end = await finished(proc);
    assert.equal(end.code, 0, end.stdout + end.stderr);
    assert.doesNotMatch(end.stdout, /configuration reloaded/);
  });
});
