/**
 * What both benchmark scripts need to run `bin/aproxy` as an operator does
 * and to read what a process spent: spawning (killed with the driver),
 * waiting for a line, and CPU time from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const APROXY_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'aproxy');

export type Spawned = ChildProcess & { out: string };

const children = new Set<ChildProcess>();
// Whatever happens to the driver, the processes it started go with it.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts a process that dies with the driver; its stdout collects in `out`. */
export function spawnTracked(file: string, args: string[], nodeOptions: string[] = []): Spawned {
  const child = spawn(process.execPath, [...nodeOptions, file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const c = Object.assign(child, { out: '' });
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (c.out += d));
  return c;
}

/** `bin/aproxy ARGS`. */
export function spawnAproxy(args: string[]): Spawned {
  return spawnTracked(APROXY_BIN, args);
}

/** Resolves with the first match of `re` in the child's stdout. */
export async function waitFor(child: Spawned, re: RegExp): Promise<RegExpExecArray> {
  for (;;) {
    const m = re.exec(child.out);
    if (m) return m;
    await once(child.stdout as NodeJS.EventEmitter, 'data');
  }
}

/** user+sys CPU time of a process, ms, from /proc (fields 14 and 15, clock ticks of 10 ms). */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
