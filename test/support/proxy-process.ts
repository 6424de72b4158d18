import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { APROXY_BIN, waitForOutput } from '../../scripts/processes.js';

/** aproxy as its own process (so its memory is its own), with its JSON log on stdout. */
export interface ProxyProcess {
  readonly child: ChildProcess & { output: { stdout: string; stderr: string } };
  readonly pid: number;
  /** The /metrics URL, when started with --metrics. */
  readonly metricsUrl: string | undefined;
  /** Peak resident memory so far (VmHWM), in MiB. */
  peakRssMiB(): number;
  /** Log records (JSON lines) so far. */
  records(): Array<Record<string, unknown>>;
  /** Resolves with the first log record matching `pick`, now or later. */
  waitForRecord(pick: (r: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  scrape(): Promise<string>;
}

/** Starts `node NODE_ARGS bin/aproxy ARGS`, waits for "aproxy ready", and stops it after the test. */
export async function startProxyProcess(
  t: TestContext,
  args: string[],
  /** `openFiles`: the process's open-file limit, soft and hard (util-linux's prlimit execs it, same pid). */
  o: { nodeArgs?: string[]; openFiles?: number } = {},
): Promise<ProxyProcess> {
  const command = [process.execPath, ...(o.nodeArgs ?? []), APROXY_BIN, '--log-format', 'json', ...args];
  const limited = o.openFiles === undefined ? command : ['prlimit', `--nofile=${o.openFiles}:${o.openFiles}`, ...command];
  const child = spawn(limited[0] as string, limited.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const proc = Object.assign(child, { output });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close');
    }
  });
  await waitForOutput(proc, /"msg":"aproxy ready"/);
  const records = () =>
    output.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const metricsUrl = records().find((r) => r.msg === 'serving metrics')?.url as string | undefined;
  return {
    child: proc,
    pid: child.pid as number,
    metricsUrl,
    peakRssMiB: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024,
    records,
    waitForRecord: (pick) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const r = records().find(pick);
          if (r === undefined) return;
          child.stdout.off('data', check);
          child.off('close', onClose);
          resolve(r);
        };
        const onClose = () =>
          reject(new Error(`aproxy exited (${child.exitCode ?? child.signalCode}) first; stderr: ${output.stderr.slice(-2000)}`));
        child.stdout.on('data', check);
        child.once('close', onClose);
        check();
      }),
    scrape: async () => {
      if (metricsUrl === undefined) throw new Error('started without --metrics');
      return (await fetch(metricsUrl)).text();
    },
  };
}

/** The value of one series in a Prometheus scrape (0 when absent). */
export function seriesValue(scrape: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
