// Real AF_VSOCK: this machine has no vsock loopback and must never reach
// its host over vsock, so the scenarios (test/vsock/in-vm.suite.ts) run
// inside a QEMU TCG guest with the kernel's vsock_loopback transport: the
// proxy, the test KBS and the guests all inside, talking over real vsock
// sockets. Each scenario is reported here under its own name.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';
import { findQemuKit, runInVsockVm, type VsockVmRun } from '../../scripts/qemu/vm.js';
import { vsockAddonPath } from '../../src/frontend/vsock-native.js';

const root = REPO_ROOT;
const kit = findQemuKit();
const skip =
  'missing' in kit
    ? kit.missing
    : vsockAddonPath() === undefined
      ? 'no vsock addon: none was built at npm ci (needs python3, make, a C compiler and Node headers)'
      : !existsSync(join('/lib/modules', /vmlinuz-(.+)$/.exec(kit.kernel)?.[1] ?? '-'))
        ? `no kernel modules for ${kit.kernel} (apt-get install linux-image-amd64)`
        : false;

interface TapResult {
  readonly name: string;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly detail: string;
}

/** Top-level subtests of a node:test TAP stream (the scenarios are one level inside a describe). */
function parseTap(output: string): TapResult[] {
  const lines = output.split('\n');
  const results: TapResult[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^ {4}(not ok|ok) \d+ - (.*?)( # SKIP.*)?$/.exec(lines[i] ?? '');
    if (!m) continue;
    const detail: string[] = [];
    for (let j = i + 1; j < lines.length && /^ {6}/.test(lines[j] ?? ''); j++) detail.push((lines[j] ?? '').trim());
    results.push({ name: m[2] ?? '', ok: m[1] === 'ok', skipped: m[3] !== undefined, detail: detail.join('\n') });
  }
  return results;
}

// A skipped suite would vanish from the runner's totals: where it cannot run, it is one skipped test, with the reason.
if (skip) test('vsock, for real, in a QEMU guest', { skip }, () => undefined);
else
  describe('vsock, for real, in a QEMU guest', async () => {
    let run: VsockVmRun | undefined;
    let failure: unknown;
    const scratch = await mkdtemp(join(tmpdir(), 'aproxy-vsock-'));
    try {
      run = await runInVsockVm({
        kit: kit as Exclude<typeof kit, { missing: string }>,
        scratch,
        workDir: root,
        // The same Node binary as this run (the host's / is mounted in the guest): each CI line tests its own.
        command: `${process.execPath} --test --test-reporter=tap dist/test/vsock/in-vm.suite.js`,
      });
    } catch (err) {
      failure = err;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const results = run === undefined ? [] : parseTap(run.output);

    test('the guest boots and runs the vsock scenarios', (t) => {
      assert.equal(failure, undefined, String(failure));
      t.diagnostic(`guest ready ${Math.round(run?.bootToReadyMs ?? 0)} ms after boot; whole run ${Math.round(run?.totalMs ?? 0)} ms`);
      assert.ok(results.length >= 10, `expected the scenarios' results, got:\n${run?.output ?? ''}`);
      assert.equal(run?.code, 0, run?.output);
    });

    for (const r of results) {
      test(r.name, { skip: r.skipped ? 'skipped inside the VM' : false }, () => {
        assert.ok(r.ok, r.detail);
      });
    }
  });
