import { spawn, type ChildProcess } from 'node:child_process';
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
export function waitForOutput(child: ChildProcess & { output: { stdout: string } }, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(child.output.stdout);
      if (m) {
        child.stdout?.off('data', check);
        child.off('close', onClose);
        resolve(m[0]);
      }
    };
    const onClose = () => reject(new Error(`process exited before printing ${re}; stdout: ${child.output.stdout}`));
    child.stdout?.on('data', check);
    child.once('close', onClose);
    check();
  });
}
