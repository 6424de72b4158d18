import type { Argv } from 'yargs';
import { SNP_MEASUREMENT_BYTES } from '../protocol/snp-report.js';
import { parseHex, parseVsockAddress, positiveInt, UsageError } from './usage.js';

export const command = 'simulate-guest';
export const describe = 'act as SVSM guests: attest through the proxy and decrypt the secret';

export const builder = <T>(y: Argv<T>) =>
  y
    .option('unix', { type: 'string', describe: 'proxy socket path (as QEMU connects COM3)' })
    .option('vsock', { type: 'string', describe: 'proxy vsock address CID:PORT (as SVSM connects, e.g. 2:1995 from a guest)' })
    .option('measurement', {
      type: 'string',
      demandOption: true,
      describe: `launch measurement to report, ${SNP_MEASUREMENT_BYTES * 2} hex digits`,
    })
    .option('expect-secret', { type: 'string', describe: 'hex secret the guest must decrypt' })
    .option('sessions', { type: 'number', default: 1, describe: 'number of boots' })
    .option('concurrency', { type: 'number', default: 1, describe: 'links open at once' })
    .option('host-data', { type: 'string', describe: 'HOST_DATA for the report, 64 hex digits (what QEMU host-data= sets per VM)' })
    .option('answer-timeout-ms', {
      type: 'number',
      default: 30_000,
      describe: 'how long to wait for each answer before reporting a timeout',
    })
    .conflicts('unix', 'vsock')
    .check((a) => {
      if (a.unix === undefined && a.vsock === undefined) throw new UsageError('simulate-guest needs --unix PATH or --vsock CID:PORT');
      return true;
    });

type Args = Awaited<ReturnType<typeof builder>['argv']>;

export async function handler(argv: Args): Promise<void> {
  const { runGuestFleet } = await import('../testkit/guest-simulator.js');
  const summary = await runGuestFleet({
    address: argv.vsock === undefined ? (argv.unix as string) : parseVsockAddress(argv.vsock),
    measurement: parseHex('measurement', argv.measurement, SNP_MEASUREMENT_BYTES),
    expectSecret: argv['expect-secret'] === undefined ? undefined : parseHex('expect-secret', argv['expect-secret']),
    sessions: positiveInt('sessions', argv.sessions),
    concurrency: positiveInt('concurrency', argv.concurrency),
    answerTimeoutMs: positiveInt('answer-timeout-ms', argv['answer-timeout-ms']),
    hostData: argv['host-data'] === undefined ? undefined : parseHex('host-data', argv['host-data'], 32),
  });
  const ms = (n: number) => n.toFixed(1);
  console.log(
    `${summary.succeeded}/${summary.sessions} sessions succeeded in ${ms(summary.elapsedMs)} ms ` +
      `(${((summary.sessions * 1000) / summary.elapsedMs).toFixed(1)}/s; latency p50 ${ms(summary.latencyMs.p50)} ms, ` +
      `p95 ${ms(summary.latencyMs.p95)} ms, p99 ${ms(summary.latencyMs.p99)} ms)` +
      (argv['expect-secret'] === undefined ? '' : '; every decrypted secret was checked against --expect-secret'),
  );
  for (const e of [...new Set(summary.errors)].slice(0, 10)) console.log(`error: ${e}`);
  process.exitCode = summary.failed === 0 ? 0 : 1;
}
