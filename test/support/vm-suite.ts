import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';
import { parseTap, type QemuKit, runInVsockVm, type VsockVmRun } from '../../scripts/qemu/vm.js';

export interface VmSuiteOptions {
  readonly title: string;
  /** Why it cannot run here, or false. */
  readonly skip: string | false;
  readonly kit: QemuKit | { missing: string };
  /** The node:test file the guest runs (under dist/), its scenarios one level inside a describe. */
  readonly suite: string;
  /** What the first test is named: the guest booted and ran the scenarios. */
  readonly booted: string;
  /** At least this many scenarios are expected. */
  readonly minScenarios: number;
  readonly init?: 'shell' | 'systemd';
  /** The VM's bound, ms: it is stopped there and the failure says how far it got. */
  readonly limitMs?: number;
  /** Before the VM starts: files for it in `results` (mounted at /results in the guest). */
  readonly prepare?: (results: string) => Promise<void>;
}

/**
 * A suite whose scenarios run inside a QEMU TCG guest, each reported here
 * under its own name. Where it cannot run it is one skipped test with the
 * reason: a skipped describe would vanish from the runner's totals.
 */
export function vmSuite(o: VmSuiteOptions): void {
  if (o.skip) {
    test(o.title, { skip: o.skip }, () => undefined);
    return;
  }
  describe(o.title, async () => {
    let run: VsockVmRun | undefined;
    let failure: unknown;
    const scratch = await mkdtemp(join(tmpdir(), 'aproxy-vm-'));
    try {
      await o.prepare?.(join(scratch, 'results'));
      run = await runInVsockVm({
        kit: o.kit as QemuKit,
        scratch,
        workDir: REPO_ROOT,
        init: o.init ?? 'shell',
        ...(o.limitMs === undefined ? {} : { limitMs: o.limitMs }),
        // The same Node binary as this run (the host's / is mounted in the guest): each CI line tests its own.
        // No test timeout inside: the VM's bound holds the whole run.
        command: `${process.execPath} --test --test-reporter=tap ${o.suite}`,
      });
    } catch (err) {
      failure = err;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const results = run === undefined ? [] : parseTap(run.output);

    test(o.booted, (t) => {
      assert.equal(failure, undefined, String(failure));
      t.diagnostic(`guest ready ${Math.round(run?.bootToReadyMs ?? 0)} ms after boot; whole run ${Math.round(run?.totalMs ?? 0)} ms`);
      assert.ok(results.length >= o.minScenarios, `expected the scenarios' results, got:\n${run?.output ?? ''}`);
      assert.equal(run?.code, 0, run?.output);
    });

    for (const r of results) {
      test(r.name, { skip: r.skipped ? 'skipped inside the VM' : false }, () => {
        assert.ok(r.ok, r.detail);
      });
    }
  });
}
