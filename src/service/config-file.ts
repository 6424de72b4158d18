import { readFileSync } from 'node:fs';
import { ConfigError } from '../protocol/errors.js';

/**
 * Reads the config file named by the option `config`: JSON whose keys are
 * the option names (options.ts). Its keys and values are checked by
 * `resolveSettings` (settings.ts), with the same rules as flags.
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
    throw new ConfigError(`config file ${path}: not JSON (${(err as Error).message})`);
  }
}
