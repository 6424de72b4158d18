/**
 * Runs a tiny Linux VM under QEMU (TCG) whose COM1 and COM3 are relayed to
 * each other inside the guest, so that a simulated SVSM on COM1 reaches
 * aproxy on COM3 through QEMU's real 16550 UART emulation and socket chardev.
 * Used by test/qemu; parameterised by paths; stop() ends what start() began.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, watch } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { dieWithMe, REPO_ROOT } from '../processes.js';

export interface QemuKit {
  readonly qemu: string;
  readonly version: string;
  readonly kernel: string;
  readonly busybox: string;
}

const BUILD_INITRAMFS = join(REPO_ROOT, 'scripts', 'qemu', 'build-initramfs.sh');

/** Finds QEMU, a kernel and a static busybox, or says what is missing. */
export function findQemuKit(): QemuKit | { missing: string } {
  // .ci/run runs the QEMU suites on one Node line only.
  const off = process.env.APROXY_QEMU_SUITES;
  if (off?.startsWith('off')) return { missing: `APROXY_QEMU_SUITES=${off}` };
  const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
  if (qemu === undefined) return { missing: 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)' };
  const kernels = existsSync('/boot')
    ? readdirSync('/boot')
        .filter((f) => f.startsWith('vmlinuz-'))
        .sort()
    : [];
  const kernel = process.env.APROXY_QEMU_KERNEL ?? (kernels.length > 0 ? join('/boot', kernels[kernels.length - 1] as string) : undefined);
  if (kernel === undefined || !existsSync(kernel))
    return { missing: 'no kernel in /boot (apt-get install linux-image-amd64) and APROXY_QEMU_KERNEL unset' };
  const busybox = '/bin/busybox';
  const file = spawnSync('file', ['-L', busybox], { encoding: 'utf8' });
  if (!existsSync(busybox) || (file.status === 0 && !/statically linked/.test(file.stdout))) {
    return { missing: 'no static busybox (apt-get install busybox-static)' };
  }
  if (spawnSync('sh', ['-c', 'command -v cpio'], { encoding: 'utf8' }).status !== 0)
    return { missing: 'cpio not installed (apt-get install cpio)' };
  const v = spawnSync(qemu, ['--version'], { encoding: 'utf8' });
  const version = /version (\d+\.\d+(?:\.\d+)?)/.exec(v.stdout)?.[1] ?? '0.0';
  return { qemu, version, kernel, busybox };
}

export function buildInitramfs(out: string, busybox: string): void {
  const r = spawnSync('sh', [BUILD_INITRAMFS, out, busybox], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the initramfs failed: ${r.stderr}`);
}

export interface VmOptions {
  readonly kit: QemuKit;
  readonly initrd: string;
  /** Directory for the COM1 socket and the COM2 console log. */
  readonly workDir: string;
  /** QEMU arguments that define COM3 (after COM1 and COM2). */
  readonly com3: string[];
}

export class QemuVm {
  readonly com1: string;
  readonly consoleLog: string;
  private child: ChildProcess | undefined;
  private stderr = '';

  constructor(private readonly o: VmOptions) {
    this.com1 = join(o.workDir, 'com1.sock');
    this.consoleLog = join(o.workDir, 'com2.log');
  }

  /** Starts QEMU and resolves once the guest's relay is running. */
  async start(): Promise<void> {
    const args = [
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-accel',
      'tcg',
      '-m',
      '256',
      '-kernel',
      this.o.kit.kernel,
      '-initrd',
      this.o.initrd,
      '-append',
      'console=ttyS1 quiet panic=-1',
      '-serial',
      `unix:${this.com1},server=on,wait=off`,
      '-serial',
      `file:${this.consoleLog}`,
      ...this.o.com3,
    ];
    const child = dieWithMe(spawn(this.o.kit.qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    this.child = child;
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`QEMU exited (${String(code)}) before the guest was ready: ${this.stderr.trim()}`);
    });
    // A bound on a guest that never gets ready, so a failed boot ends QEMU instead of leaving it running.
    let limit: NodeJS.Timeout | undefined;
    const tooLong = new Promise<never>((_, reject) => {
      limit = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the guest was not ready within 120 s: ${this.stderr.trim()}`));
      }, 120_000);
    });
    try {
      await Promise.race([waitForText(this.consoleLog, 'APROXY-RELAY-READY'), exited, tooLong]);
    } finally {
      clearTimeout(limit);
    }
    exited.catch(() => undefined);
    tooLong.catch(() => undefined);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    const exit = once(child, 'exit');
    child.kill('SIGTERM');
    await exit;
  }
}

/** Resolves when `path` contains `text`; watches the file instead of polling. */
export async function waitForText(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const watcher = watch(dir);
  try {
    for (;;) {
      // Listen before reading: a write that lands while the file is being read must still wake us.
      const changed = once(watcher, 'change');
      const content = await readFile(path, 'utf8').catch(() => '');
      if (content.includes(text)) return;
      await changed;
    }
  } finally {
    watcher.close();
  }
}

const BUILD_VSOCK_INITRAMFS = join(dirname(BUILD_INITRAMFS), 'build-vsock-initramfs.sh');

export interface VsockVmRun {
  /** Exit status of the command inside the guest. */
  readonly code: number;
  /** Its standard output and error. */
  readonly output: string;
  /** Guest uptime when its root was ready, from its console. */
  readonly bootToReadyMs: number;
  readonly totalMs: number;
}

/**
 * Runs `command` in `workDir` inside a QEMU TCG guest that has the vsock
 * loopback transport, with the host's / mounted read-only (plus a tmpfs
 * overlay). No vhost-vsock device: nothing in the guest reaches this host.
 */
export async function runInVsockVm(o: {
  kit: QemuKit;
  scratch: string;
  workDir: string;
  command: string;
  limitMs?: number;
  /** `systemd`: boot this machine's systemd as PID 1 and run the command as a service under it. */
  init?: 'shell' | 'systemd';
}): Promise<VsockVmRun> {
  const kver = /vmlinuz-(.+)$/.exec(o.kit.kernel)?.[1];
  if (kver === undefined || !existsSync(join('/lib/modules', kver))) throw new Error(`no modules for ${o.kit.kernel} in /lib/modules`);
  const initrd = join(o.scratch, 'vsock-initrd.cpio.gz');
  const results = join(o.scratch, 'results');
  const consoleLog = join(o.scratch, 'console.log');
  const r = spawnSync('sh', [BUILD_VSOCK_INITRAMFS, initrd, kver, o.workDir, o.command, o.kit.busybox, o.init ?? 'shell'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the vsock initramfs failed: ${r.stderr}`);
  spawnSync('mkdir', ['-p', results]);
  const t0 = performance.now();
  const child = dieWithMe(
    spawn(
      o.kit.qemu,
      [
        '-accel',
        'tcg,thread=multi',
        '-cpu',
        'max',
        '-smp',
        '2',
        '-m',
        '2048',
        '-nodefaults',
        '-nic',
        'none',
        '-display',
        'none',
        '-no-reboot',
        '-kernel',
        o.kit.kernel,
        '-initrd',
        initrd,
        '-append',
        // Under systemd, each unit's start and end on the console: what a hung boot was waiting for is in the kept log.
        `console=ttyS0 quiet panic=-1${o.init === 'systemd' ? ' systemd.unit=aproxy-vm.target systemd.show_status=1' : ''}`,
        '-serial',
        `file:${consoleLog}`,
        '-virtfs',
        'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
        '-virtfs',
        `local,path=${results},mount_tag=results,security_model=none`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // A bound on a hung guest, not a measurement: the command normally powers the VM off itself.
  const limitMs = o.limitMs ?? 600_000;
  let killed = false;
  const limit = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, limitMs);
  const [exitCode] = (await once(child, 'exit')) as [number | null];
  clearTimeout(limit);
  const rc = await readFile(join(results, 'rc'), 'utf8').catch(() => undefined);
  // The command writes its output to the host as it runs: what it got to is there even when it did not finish.
  const output = await readFile(join(results, 'out'), 'utf8').catch(() => '');
  const console = await readFile(consoleLog, 'utf8').catch(() => '');
  const uptime = /APROXY-VM-READY (\d+\.\d+)/.exec(console)?.[1];
  if (rc === undefined) {
    const kept = join(tmpdir(), `aproxy-vsock-vm-${Date.now()}.log`);
    await writeFile(kept, `# QEMU stderr\n${stderr}\n# console\n${console}\n# command output\n${output}`);
    const how = killed ? `was stopped at its ${Math.round(limitMs / 1000)} s limit` : `ended (QEMU exit ${String(exitCode)})`;
    const where =
      uptime === undefined
        ? 'the guest never reached its root (see the console)'
        : output === ''
          ? `the guest was ready ${uptime} s after boot, but the command wrote nothing`
          : `the command had run; its last lines:\n${lastLines(output, 15)}`;
    throw new Error(
      `the vsock VM ${how} before the command finished: ${where}\nQEMU: ${stderr.trim() || '(nothing)'}\nall of it kept in ${kept}`,
    );
  }
  return {
    code: Number(rc.trim()),
    output,
    bootToReadyMs: uptime === undefined ? NaN : Number(uptime) * 1000,
    totalMs: performance.now() - t0,
  };
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** One scenario's result from a node:test TAP stream run inside a VM. */
export interface TapResult {
  readonly name: string;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly detail: string;
}

/** The scenarios of a node:test TAP stream: the subtests one level inside its describe. */
export function parseTap(output: string): TapResult[] {
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
