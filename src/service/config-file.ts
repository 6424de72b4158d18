import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../protocol/errors.js';
import { LOG_FORMATS, LOG_LEVELS } from './log.js';

const positive = z.number().int().positive();
const vsockPort = z.union([z.number().int().positive(), z.literal(true)]);
const socketMode = z.string().regex(/^0?[0-7]{3}$/, 'an octal mode such as "0660"');
const socketGroup = z.union([z.string().min(1), z.number().int().nonnegative()]).transform(String);
/** The backend's own options, as JSON values; the backend checks them. */
const backendSection = z.record(z.string(), z.unknown());

/** One entry of `listeners`: an address, and optional overrides of the proxy-wide settings, with the flag names. */
const listenerSchema = z
  .object({
    name: z.string().min(1),
    unix: z.string().min(1),
    vsock: vsockPort,
    force: z.boolean(),
    'socket-mode': socketMode,
    'socket-group': socketGroup,
    protocol: z.string().min(1),
    url: z.string().min(1),
    resource: z.string().min(1),
    'ca-cert': z.string().min(1),
    'request-timeout-ms': positive,
    'auth-retry-budget-ms': z.number().int().nonnegative(),
    backend: backendSection,
    'max-frame-bytes': positive,
    'frame-timeout-ms': positive,
    'phase-timeout-ms': positive,
  })
  .partial()
  .strict()
  .refine((l) => (l.unix === undefined) !== (l.vsock === undefined), 'each listener needs exactly one of "unix" or "vsock"');
export type FileListener = z.output<typeof listenerSchema>;

/** `--config FILE`: JSON whose keys are the long flag names. Flags given on the command line win. */
export const configFileSchema = z
  .object({
    protocol: z.string().min(1),
    url: z.string().min(1),
    unix: z.union([z.string().min(1), z.array(z.string().min(1))]).transform((u) => (Array.isArray(u) ? u : [u])),
    vsock: z.union([vsockPort, z.array(vsockPort)]).transform((v) => (Array.isArray(v) ? v : [v]).map((p) => (p === true ? '' : String(p)))),
    listeners: z.array(listenerSchema),
    force: z.boolean(),
    resource: z.string().min(1),
    'log-level': z.enum(LOG_LEVELS),
    'log-format': z.enum(LOG_FORMATS),
    'max-frame-bytes': positive,
    'frame-timeout-ms': positive,
    'phase-timeout-ms': positive,
    'request-timeout-ms': positive,
    'auth-retry-budget-ms': z.number().int().nonnegative(),
    'socket-mode': socketMode,
    'socket-group': socketGroup,
    'shutdown-grace-ms': z.number().int().nonnegative(),
    'vsock-max-per-cid': positive,
    'vsock-max-connections': positive,
    'sessions-per-minute': positive,
    'vsock-sessions-per-minute': positive,
    'session-burst': positive,
    'backend-call-timeout-ms': positive,
    'log-buffer-bytes': positive,
    'ca-cert': z.string().min(1),
    metrics: z.string().min(1),
    'backend-option': z.array(z.string()),
    backend: backendSection,
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
    const where = issue.path.length > 0 ? ` in ${issue.path.join('.')}` : '';
    throw new ConfigError(`--config ${path}: unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${where} (keys are the long flag names, e.g. "max-frame-bytes")`);
  }
  throw new ConfigError(`--config ${path}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
}
