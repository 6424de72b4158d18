import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { escapeForTerminal, escapeLinesForTerminal } from '../service/terminal.js';
import { UsageError } from './usage.js';

/** `inspect-report <file>` and `inspect-token <token>`: operator tools in src/tools/inspect.ts. */
export const report = {
  command: 'inspect-report <file>',
  describe: 'print a parsed SEV-SNP attestation report (raw, hex or base64; - for stdin)',
  builder: <T>(y: Argv<T>) =>
    y.positional('file', { type: 'string', demandOption: true, describe: 'report file, or - for standard input' }),
  async handler(argv: { file: string }): Promise<void> {
    const { inspectReport } = await import('../tools/inspect.js');
    const input = isStdin(argv.file) ? readFileSync(0) : readInput(argv.file);
    for (const line of inspectReport(input)) console.log(escapeForTerminal(line));
  },
};

export const token = {
  command: 'inspect-token <token>',
  describe: 'decode a JWT or CWT attestation token without verifying it (- for stdin)',
  builder: <T>(y: Argv<T>) => y.positional('token', { type: 'string', demandOption: true, describe: 'the token, or - for standard input' }),
  async handler(argv: { token: string }): Promise<void> {
    const { inspectToken } = await import('../tools/inspect.js');
    const d = inspectToken(isStdin(argv.token) ? readFileSync(0, 'utf8').trim() : argv.token);
    // A token's claims are anyone's text: shown escaped, line by line (JSON keeps its own layout).
    console.log(`${d.kind} (not verified)`);
    console.log(escapeLinesForTerminal(`header: ${JSON.stringify(d.header, bigintSafe, 2)}`));
    console.log(escapeLinesForTerminal(`claims: ${JSON.stringify(d.claims, bigintSafe, 2)}`));
    console.log(`signature: ${d.signatureBytes} bytes`);
  },
};

/** `-` means standard input; yargs hands a lone `-` to a string positional as "", which names no file or token either. */
function isStdin(arg: string): boolean {
  return arg === '-' || (arg === '' && process.argv.includes('-'));
}

function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
}

const bigintSafe = (_k: string, v: unknown) =>
  typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v;
