import type { Argv } from 'yargs';
import { DEFAULT_RESOURCE_PATH } from '../backends/kbs/options.js';
import { SNP_MEASUREMENT_BYTES } from '../protocol/snp-report.js';
import { nonNegativeInt, parseHex } from './usage.js';

export const command = 'test-kbs';
export const describe = "run aproxy's own KBS 0.4.0 test server (per-session state and strict checks; pair it with --protocol kbs)";

export const builder = <T>(y: Argv<T>) =>
  y
    .option('measurement', {
      type: 'string',
      demandOption: true,
      describe: `expected launch measurement, ${SNP_MEASUREMENT_BYTES * 2} hex digits`,
    })
    .option('secret', { type: 'string', demandOption: true, describe: 'secret to release, hex' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
    .option('port', { type: 'number', default: 8080, describe: 'TCP port (0 picks a free one)' })
    .option('resource', { type: 'string', default: DEFAULT_RESOURCE_PATH, describe: 'resource path that holds the secret' })
    .option('reuse-jwe-per-key', {
      type: 'boolean',
      default: false,
      describe: 'benchmarks: encrypt once per guest key (all checks still run per session)',
    })
    .option('delay-ms', {
      type: 'string',
      default: '0',
      describe: 'benchmarks: answer each request this much later, as a KBS that far away',
    });

type Args = Awaited<ReturnType<typeof builder>['argv']>;

export async function handler(argv: Args): Promise<void> {
  const { TestKbs } = await import('../testkit/test-kbs.js');
  const kbs = new TestKbs({
    measurement: parseHex('measurement', argv.measurement, SNP_MEASUREMENT_BYTES),
    secret: parseHex('secret', argv.secret),
    host: argv.host,
    port: argv.port,
    resource: argv.resource,
    reuseJwePerKey: argv['reuse-jwe-per-key'],
    delayMs: nonNegativeInt('delay-ms', argv['delay-ms']),
    log: (line) => console.log(line),
  });
  const url = await kbs.start();
  console.log(`test KBS listening on ${url} (resource ${argv.resource})`);
  const stop = () => void kbs.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
