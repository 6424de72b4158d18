// A real host in a VM: a QEMU TCG guest boots this machine's own systemd
// as PID 1 (the host's / read-only with a tmpfs overlay; no network and no
// vhost-vsock device: vsock is the guest kernel's loopback transport), and
// test/systemd/in-vm.suite.ts installs the packed tarball and the shipped
// units as README.md says and runs the host's scenarios there. Each is
// reported here under its own name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../../scripts/processes.js';
import { findQemuKit } from '../../scripts/qemu/vm.js';
import { vsockAddonPath } from '../../src/frontend/vsock-native.js';
import { vmSuite } from '../support/vm-suite.js';

const kit = findQemuKit();
const addon = vsockAddonPath();
const skip =
  'missing' in kit
    ? kit.missing
    : addon === undefined
      ? 'no vsock addon: none was built at npm ci (needs python3, make, a C compiler and Node headers)'
      : !existsSync('/lib/systemd/systemd')
        ? 'no systemd to boot (apt-get install systemd)'
        : !existsSync('/usr/bin/prometheus')
          ? 'no Prometheus for the alert rules (apt-get install prometheus)'
          : !existsSync(join('/lib/modules', /vmlinuz-(.+)$/.exec(kit.kernel)?.[1] ?? '-'))
            ? `no kernel modules for ${kit.kernel} (apt-get install linux-image-amd64)`
            : false;

/**
 * What `npm pack` puts in the tarball, packed from a copy: its prepack step
 * rebuilds the addon in the checkout, under the feet of the suites running
 * beside this one. The copy gets the same prebuilt binary that step stores.
 */
async function packTarball(into: string, addonPath: string): Promise<void> {
  const stage = join(into, 'stage');
  const files = (JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
  for (const p of ['package.json', ...files].filter((f) => existsSync(join(REPO_ROOT, f))))
    await cp(join(REPO_ROOT, p), join(stage, p), { recursive: true });
  const prebuilds = join(stage, 'native', 'vsock', 'prebuilds');
  await rm(prebuilds, { recursive: true, force: true });
  await mkdir(join(prebuilds, 'linux-x64'), { recursive: true });
  await cp(addonPath, join(prebuilds, 'linux-x64', 'vsock.napi.glibc.node'));
  // The record the install checks the binary against (prepack's, in sha256sum's format).
  const sum = createHash('sha256')
    .update(await readFile(addonPath))
    .digest('hex');
  await writeFile(join(prebuilds, 'SHA256SUMS'), `${sum}  linux-x64/vsock.napi.glibc.node\n`);
  const r = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', into], { cwd: stage, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  await rm(stage, { recursive: true, force: true });
}

vmSuite({
  title: 'a real host under systemd, in a QEMU guest',
  skip,
  kit,
  suite: 'dist/test/systemd/in-vm.suite.js',
  booted: 'the guest boots systemd and runs the host scenarios',
  minScenarios: 12,
  init: 'systemd',
  // A TCG guest: npm installing the tarball alone takes minutes.
  limitMs: 1_200_000,
  prepare: async (results: string) => {
    await mkdir(results);
    await packTarball(results, addon as string);
  },
});
