import { readFileSync, statSync } from 'node:fs';
import { ConfigError, InvalidJsonError } from '../../protocol/errors.js';
import { parseStrictJson } from '../../protocol/json.js';
import type { PassedSocket } from '../systemd.js';
import { resolveSettings } from './resolve.js';
import type { Settings } from './types.js';

/**
 * Reads the config file named by the option `config`: JSON whose keys are
 * the option names (options.ts). Its keys and values are checked by
 * `resolveSettings` (resolve.ts), with the same rules as flags.
 */
export function readConfigFile(path: string): { readonly path: string; readonly json: unknown } {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(path, 'utf8');
    mode = statSync(path).mode;
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  // Like sshd's StrictModes: whoever may write the file chooses the code aproxy runs (protocol names a module).
  if ((mode & 0o002) !== 0) {
    throw new ConfigError(
      `config file ${path}: writable by every user (mode 0${(mode & 0o777).toString(8)}), and it names the code aproxy runs; chmod o-w it`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    // Deep nesting overflows JSON.parse's stack: the strict parser below names it, with its place.
    if (!(err instanceof RangeError)) {
      throw new ConfigError(
        `config file ${path}${where(text, (err as Error).message)}: not JSON (${(err as Error).message.replace(/ \(line \d+ column \d+\)$/, '')})`,
      );
    }
  }
  // What JSON.parse lets through and a config must not hold: a key given twice (the last would win unseen), nesting past 128.
  try {
    parseStrictJson(text);
  } catch (err) {
    if (!(err instanceof InvalidJsonError)) throw err;
    const reason = err.message.replace(/^invalid JSON at byte \d+: /, '');
    throw new ConfigError(`config file ${path}${lineColumn(text, err.offset)}: not accepted as JSON (${reason})`);
  }
  return { path, json };
}

/** `:LINE:COLUMN` of a character offset. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `:${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
}

/** `:LINE:COLUMN` of a JSON.parse error, from the position every Node line names (newer ones also say the line). */
function where(text: string, message: string): string {
  const position = /at position (\d+)/.exec(message)?.[1];
  return position === undefined ? '' : lineColumn(text, Number(position));
}

/**
 * Flags, and the config file they name read anew, as checked settings: what
 * `aproxy` runs with at start and on each reload, and what `aproxy check`
 * checks.
 */
export function loadSettings(flags: Readonly<Record<string, unknown>>, listenFds: readonly PassedSocket[]): Settings {
  const path = flags.config;
  return resolveSettings({ flags, listenFds, ...(typeof path === 'string' ? { file: readConfigFile(path) } : {}) });
}
