import { packageVersion } from '../package-root.js';
import { describeError, ERROR_REASONS, isAproxyError, SetupRefusedError } from '../protocol/errors.js';
import { escapeLinesForTerminal } from '../service/terminal.js';
import { plainServeFlags } from './serve-argv.js';
import { UsageError } from './usage.js';

/**
 * The `aproxy` command: one module per subcommand; this file only dispatches
 * and turns errors into exit codes. A plain start (`aproxy --config FILE`,
 * what the unit runs) goes to serve without loading yargs or the other
 * commands; everything else goes through yargs.
 */
export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const plain = plainServeFlags(args);
  await exitCodes(async () => {
    if (plain !== undefined) await (await import('./serve.js')).handler(plain);
    else await (await commandLine(args)).parseAsync();
  });
}

/** yargs with every command. */
async function commandLine(args: string[]) {
  const [{ default: yargs }, check, inspect, qemuArgs, serve, simulateGuest, testKbs] = await Promise.all([
    import('yargs'),
    import('./check.js'),
    import('./inspect.js'),
    import('./qemu-args.js'),
    import('./serve.js'),
    import('./simulate-guest.js'),
    import('./test-kbs.js'),
  ]);
  return yargs(args)
    .scriptName('aproxy')
    .usage(
      '$0 --protocol kbs --url URL --vsock\n$0 --protocol kbs --url URL --unix PATH [--force]\n\n' +
        'Attestation proxy between COCONUT-SVSM guests (vsock port 1995, or serial COM3 over a Unix socket) and an attestation server.\n' +
        "A vsock guest's CID in logs and limits is the host kernel's claim about the connecting VM, not attested.\n" +
        'Every option can also be a key of the --config file; [listener] marks those a `listeners` entry may set (docs/cli.md).',
    )
    .command(serve.command, serve.describe, serve.builder, (argv) => serve.handler(argv))
    .command(check.command, check.describe, check.builder, (argv) => check.handler(argv))
    .command(testKbs.command, testKbs.describe, testKbs.builder, testKbs.handler)
    .command(simulateGuest.command, simulateGuest.describe, simulateGuest.builder, simulateGuest.handler)
    .command(qemuArgs.command, qemuArgs.describe, qemuArgs.builder, qemuArgs.handler)
    .command(inspect.report.command, inspect.report.describe, inspect.report.builder, inspect.report.handler)
    .command(inspect.token.command, inspect.token.describe, inspect.token.builder, inspect.token.handler)
    .command('demo', 'self-contained demo: test KBS, proxy and one simulated guest, no server needed', {}, async () => {
      const { runDemo } = await import('../testkit/demo.js');
      process.exitCode = await runDemo();
    })
    .strict()
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
}

/** Runs `body`, turning what it throws into the exit-code convention. */
async function exitCodes(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    // Exit 2: bad usage, or a configuration or host problem (a reason code of area `setup`): fix and start again.
    if (err instanceof UsageError || (err instanceof Error && err.name === 'YError')) {
      console.error(`aproxy: ${escapeLinesForTerminal(err.message)} (see aproxy --help)`);
      process.exit(2);
    }
    if (isAproxyError(err) && ERROR_REASONS[err.code].area === 'setup') {
      // The code (docs/errors.md says what to do) after each problem; several are listed a line each.
      console.error(
        err instanceof SetupRefusedError && err.problems.length > 1
          ? `aproxy: ${escapeLinesForTerminal(err.message)}`
          : `aproxy: ${escapeLinesForTerminal(err.message)} [${err.code}]`,
      );
      process.exit(2);
    }
    console.error(`aproxy: ${escapeLinesForTerminal(describeError(err))}`);
    process.exit(1);
  }
}
