import { readFileSync } from 'node:fs';
import { ConfigError } from '../../protocol/errors.js';
import type { OptionSpec } from './options.js';

/** `ADDR:PORT` (or `[v6]:PORT`, or `:PORT` for loopback) → host and port. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new ConfigError(`expected ADDR:PORT, e.g. 127.0.0.1:9464, got ${JSON.stringify(text)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** A numeric gid, or a group name looked up in /etc/group. */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  let table = '';
  try {
    table = readFileSync(groupFile, 'utf8');
  } catch {
    // fall through to the error below
  }
  for (const line of table.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new ConfigError(`option socket-group ${group}: no such group`);
}

/** A permission mode as operators write it: 0660. */
export function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** An option's checked value as an operator would write it (docs, help). */
export function formatValue(spec: Pick<OptionSpec, 'type'>, value: string | number | boolean): string {
  return spec.type === 'mode' && typeof value === 'number' ? formatMode(value) : String(value);
}
