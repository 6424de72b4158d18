/**
 * Running `bin/aproxy` and other Node processes as an operator would, for
 * the tests and the benchmark and hostile-guest scripts alike: spawning
 * (every process dies with the one that started it), waiting for a line,
 * the result of a run, socket activation as systemd does it, and the CPU
 * time a process spent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/package-root.js';

/** The checkout (or installed package) this runs from. */
export const REPO_ROOT = PACKAGE_ROOT;
export const APROXY_BIN = join(REPO_ROOT, 'bin', 'aproxy');

/** A child process whose output is collected as it comes. */
export type Spawned = ChildProcess & { readonly output: { stdout: string; stderr: string } };

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
// Whatever happens to the process that started them, its children go with it.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Ends `child` when this process exits, however it exits short of a signal: no VM or proxy outlives its test. */
export function dieWithMe<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function collect(child: ChildProcess): Spawned {
  dieWithMe(child);
  const output = { stdout: '', stderr: '' };
  // A process that could not be started (EACCES, ENOENT) ends the same way, its reason in stderr.
  child.once('error', (err) => {
    output.stderr += `${err.message}\n`;
  });
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  return Object.assign(child, { output });
}

export interface SpawnOptions {
  readonly nodeOptions?: string[];
  /** Pass stderr through instead of collecting it. */
  readonly inheritStderr?: boolean;
  /** Run as this user and group (the caller must be root). */
  readonly user?: { readonly uid: number; readonly gid: number };
  /** The working directory, as a service manager would set it. */
  readonly cwd?: string;
  /** Written to standard input, which is then closed (otherwise it is not connected). */
  readonly stdin?: string;
  /** Added to the environment. */
  readonly env?: Readonly<Record<string, string>>;
}

/** `node [nodeOptions] FILE ARGS`, stdout and stderr collected. */
export function spawnNode(file: string, args: string[], o: SpawnOptions = {}): Spawned {
  const stderr = o.inheritStderr === true ? 'inherit' : 'pipe';
  const child = spawn(process.execPath, [...(o.nodeOptions ?? []), file, ...args], {
    stdio: [o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', stderr],
    ...o.user,
    ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
    ...(o.env === undefined ? {} : { env: { ...process.env, ...o.env } }),
  });
  if (o.stdin !== undefined) child.stdin?.end(o.stdin);
  return collect(child);
}

/** `bin/aproxy ARGS`. */
export function spawnCli(args: string[], o: SpawnOptions = {}): Spawned {
  return spawnNode(APROXY_BIN, args, o);
}

/** Runs `bin/aproxy ARGS` to completion. */
export async function runCli(args: string[], o: SpawnOptions = {}): Promise<Finished> {
  return finished(spawnCli(args, o));
}

export async function finished(child: Spawned): Promise<Finished> {
  const [code, signal] =
    child.exitCode !== null || child.signalCode !== null
      ? [child.exitCode, child.signalCode]
      : await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
          child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]));
          child.once('error', () => resolve([null, null]));
        });
  return { code, signal, stdout: child.output.stdout, stderr: child.output.stderr };
}

/** The first match of `re` in the child's stdout, once printed; rejects if the child exits first. */
export function waitForOutput(child: Spawned, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(child.output.stdout);
      if (m) {
        child.stdout?.off('data', check);
        child.off('close', onClose);
        resolve(m);
      }
    };
    const onClose = () =>
      reject(new Error(`process exited before printing ${re}; stdout: ${child.output.stdout}; stderr: ${child.output.stderr}`));
    child.stdout?.on('data', check);
    child.once('close', onClose);
    check();
  });
}

/**
 * A socket systemd would create for the service: a Unix path, a vsock port
 * (any CID), or a loopback TCP port (a misconfiguration); `name` is its
 * FileDescriptorName=.
 */
export type ActivatedSocket = ({ readonly unix: string } | { readonly vsockPort: number } | { readonly tcpPort: number }) & {
  readonly name?: string;
};

/**
 * Starts `bin/aproxy ARGS` as systemd socket activation does: the sockets
 * bound and listening at fd 3, 4, …, LISTEN_FDS and LISTEN_PID set, then
 * exec. (python3 stands in for systemd: it can create AF_VSOCK sockets.)
 */
export function spawnSocketActivated(sockets: readonly ActivatedSocket[], args: string[]): Spawned {
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
    ...(sockets.some((s) => s.name !== undefined)
      ? [`os.environ['LISTEN_FDNAMES'] = ${JSON.stringify(sockets.map((s) => s.name ?? 'unknown').join(':'))}`]
      : []),
    "os.environ['LISTEN_PID'] = str(os.getpid())",
    'os.execv(sys.argv[1], sys.argv[1:])',
  );
  return collect(spawn('python3', ['-c', lines.join('\n'), process.execPath, APROXY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** user+sys CPU time of a process, ms, from /proc (fields 14 and 15, clock ticks of 10 ms). */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
