import { readFileSync } from 'node:fs';
import { ConfigError } from '../../protocol/errors.js';
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
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  try {
    return { path, json: JSON.parse(text) as unknown };
  } catch (err) {
    throw new ConfigError(
      `config file ${path}${where(text, (err as Error).message)}: not JSON (${(err as Error).message.replace(/ \(line \d+ column \d+\)$/, '')})`,
    );
  }
}

/** `:LINE:COLUMN` of a JSON.parse error, from the position every Node line names (newer ones also say the line). */
function where(text: string, message: string): string {
  const position = /at position (\d+)/.exec(message)?.[1];
  if (position === undefined) return '';
  const before = text.slice(0, Number(position)).split('\n');
  return `:${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
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
