import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const APROXY_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'aproxy');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/aproxy` to completion. */
export async function runCli(args: string[]): Promise<Finished> {
  const child = spawnCli(args);
  return finished(child);
}

export function spawnCli(args: string[]): ChildProcess & { output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [APROXY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  return Object.assign(child, { output });
}

export async function finished(child: ChildProcess & { output?: { stdout: string; stderr: string } }): Promise<Finished> {
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout: child.output?.stdout ?? '', stderr: child.output?.stderr ?? '' };
}

/** Resolves when the child's stdout has printed a line matching `re`. */
export function waitForOutput(child: ChildProcess & { output: { stdout: string; stderr?: string } }, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(child.output.stdout);
      if (m) {
        child.stdout?.off('data', check);
        child.off('close', onClose);
        resolve(m[0]);
      }
    };
    const onClose = () =>
      reject(new Error(`process exited before printing ${re}; stdout: ${child.output.stdout}; stderr: ${child.output.stderr ?? ''}`));
    child.stdout?.on('data', check);
    child.once('close', onClose);
    check();
  });
}

/** A socket systemd would create for the service: a Unix path, a vsock port (any CID), or a loopback TCP port (a misconfiguration). */
export type ActivatedSocket = { readonly unix: string } | { readonly vsockPort: number } | { readonly tcpPort: number };

/**
 * Starts `bin/aproxy ARGS` as systemd socket activation does: the sockets
 * bound and listening at fd 3, 4, …, LISTEN_FDS and LISTEN_PID set, then
 * exec. (python3 stands in for systemd: it can create AF_VSOCK sockets.)
 */
export function spawnSocketActivated(
  sockets: readonly ActivatedSocket[],
  args: string[],
): ChildProcess & { output: { stdout: string; stderr: string } } {
  const lines = ['import os, socket, sys'];
  sockets.forEach((s, i) => {
    const fd = 3 + i;
    if ('unix' in s) lines.push(`s${i} = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)`, `s${i}.bind(${JSON.stringify(s.unix)})`);
    else if ('tcpPort' in s)
      lines.push(`s${i} = socket.socket(socket.AF_INET, socket.SOCK_STREAM)`, `s${i}.bind(('127.0.0.1', ${s.tcpPort}))`);
    else lines.push(`s${i} = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)`, `s${i}.bind((socket.VMADDR_CID_ANY, ${s.vsockPort}))`);
    // dup2 onto its fd unless it already is that fd, and clear close-on-exec either way.
    lines.push(`s${i}.listen(64)`, `if s${i}.fileno() != ${fd}: os.dup2(s${i}.fileno(), ${fd})`, `os.set_inheritable(${fd}, True)`);
  });
  lines.push(
    `os.environ['LISTEN_FDS'] = '${sockets.length}'`,
    "os.environ['LISTEN_PID'] = str(os.getpid())",
    'os.execv(sys.argv[1], sys.argv[1:])',
  );
  const child = spawn('python3', ['-c', lines.join('\n'), process.execPath, APROXY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  return Object.assign(child, { output });
}
