import type { Argv } from 'yargs';
import { describeError, isAproxyError } from '../protocol/errors.js';
import type { CheckReport } from '../service/check.js';
import { loadSettings } from '../service/config/load.js';
import { createLogger } from '../service/log.js';
import { escapeForTerminal } from '../service/terminal.js';
import { serveFlags } from './serve-flags.js';

export const command = 'check';
export const describe =
  'check a configuration as start-up would, short of binding (options, config file, listeners, socket directories, templates, backend options, CA file, plugins) and print what would run; exit 0, or 2 with each problem named. Takes the same flags as aproxy.';

export const builder = <T>(y: Argv<T>) =>
  serveFlags(y).option('probe', {
    type: 'boolean',
    default: false,
    describe:
      'also contact each configured attestation server once (the KBS backends: POST /kbs/v0/auth) and report reachability, TLS, status and time; its nonce and cookie are never shown',
  });

export async function handler(flags: Readonly<Record<string, unknown>>): Promise<void> {
  const { checkConfiguration } = await import('../service/check.js');
  let report: CheckReport;
  try {
    // Sockets a service manager would pass are not there to check: their absence is no problem here.
    const settings = loadSettings(flags, []);
    report = await checkConfiguration(settings, { probe: flags.probe === true, log: createLogger({ level: 'silent' }) });
  } catch (err) {
    if (!isAproxyError(err)) throw err;
    report = { lines: [], problems: [describeError(err)] };
  }
  // A server's answer or a file's content is in these lines: nothing in them may act on the terminal or forge a line.
  for (const line of report.lines) console.log(escapeForTerminal(line));
  for (const p of report.problems) console.error(`aproxy check: ${escapeForTerminal(p)}`);
  console.log(
    report.problems.length === 0
      ? 'aproxy check: the configuration would start'
      : `aproxy check: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}; the configuration would not start`,
  );
  // Exit now: a server still trickling its answer past the probe's deadline must not hold the command open.
  process.exit(report.problems.length === 0 ? 0 : 2);
}
