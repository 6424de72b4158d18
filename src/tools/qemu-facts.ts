import { spawnSync } from 'node:child_process';
import type { QemuFacts } from './qemu-args.js';

/** Asks a QEMU binary what it is, as launch_guest.sh does: `--version`, `-h` (device planes), the q35 machine's properties. */
export function askQemu(qemu: string): QemuFacts {
  const run = (args: string[]) => {
    const r = spawnSync(qemu, args, { encoding: 'utf8', timeout: 10_000 });
    if (r.error !== undefined) {
      const code = (r.error as NodeJS.ErrnoException).code;
      throw new Error(code === 'ENOENT' ? 'no such program' : code === 'EACCES' ? 'not executable' : r.error.message);
    }
    return `${r.stdout}${r.stderr}`;
  };
  const version = /version (\d+\.\d+(?:\.\d+)?)/.exec(run(['--version']))?.[1];
  if (version === undefined) throw new Error('its --version names no QEMU version');
  return {
    version,
    planes: run(['-h']).includes('device-plane='),
    svsmVirtioMmio: run(['-machine', 'q35,help']).includes('x-svsm-virtio-mmio'),
  };
}
