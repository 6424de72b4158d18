import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../protocol/errors.js';
import { LOG_FORMATS, LOG_LEVELS } from './log.js';

const positive = z.number().int().positive();

/** `--config FILE`: JSON whose keys are the long flag names. Flags given on the command line win. */
export const configFileSchema = z
  .object({
    protocol: z.string().min(1),
    url: z.string().min(1),
    unix: z.string().min(1),
    force: z.boolean(),
    resource: z.string().min(1),
    'log-level': z.enum(LOG_LEVELS),
    'log-format': z.enum(LOG_FORMATS),
    'max-frame-bytes': positive,
    'frame-timeout-ms': positive,
    'phase-timeout-ms': positive,
    'request-timeout-ms': positive,
    'auth-retry-budget-ms': z.number().int().nonnegative(),
    'socket-mode': z.string().regex(/^0?[0-7]{3}$/, 'an octal mode such as "0660"'),
    'socket-group': z.union([z.string().min(1), z.number().int().nonnegative()]).transform(String),
    'shutdown-grace-ms': z.number().int().nonnegative(),
    'ca-cert': z.string().min(1),
    metrics: z.string().min(1),
    'backend-option': z.array(z.string()),
    /** The backend's own options, as JSON values; the backend checks them. */
    backend: z.record(z.string(), z.unknown()),
  })
  .partial()
  .strict();

export type ConfigFile = z.output<typeof configFileSchema>;

export function loadConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config ${path}: not JSON (${(err as Error).message})`);
  }
  const r = configFileSchema.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    throw new ConfigError(`--config ${path}: unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (keys are the long flag names, e.g. "max-frame-bytes")`);
  }
  throw new ConfigError(`--config ${path}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
}
