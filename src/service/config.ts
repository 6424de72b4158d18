import { readFileSync } from 'node:fs';
import { ConfigError } from '../protocol/errors.js';

/**
 * Defaults of the proxy's own settings (the option table, options.ts, shows
 * them), and the two value parsers used outside the settings: the metrics
 * address and the group lookup. The CLI turns a ConfigError into exit code 2.
 */

/** A frame that has started must finish within this; SVSM writes a frame in milliseconds, a UART in ~200 ms. */
export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;
/** Deadline per backend phase, well under what a booting guest tolerates. */
export const DEFAULT_PHASE_TIMEOUT_MS = 60_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
export { DEFAULT_BACKEND_CALL_TIMEOUT_MS } from '../backends/deadline.js';

/**
 * Guest limits. vsock admission: a guest needs one connection at a time,
 * two across a reboot. Session budget, every transport: a boot is one
 * session and a reboot takes seconds, so a rebooting SVSM never meets 10 at
 * once and 30 a minute; a flood waits 2 s a session. The host's loopback
 * (CID 1) is exempt from the per-CID caps.
 */
export const DEFAULT_GUEST_LIMITS = Object.freeze({
  maxPerCid: 4,
  maxTotal: 1024,
  sessionsPerMinute: 30,
  sessionBurst: 10,
  trustedCids: new Set([1]) as ReadonlySet<number>,
});

/** Bytes of log lines waiting for a slow stdout before new lines are dropped (and counted). */
export const DEFAULT_LOG_BUFFER_BYTES = 1024 * 1024;

export const DEFAULT_SOCKET_MODE = '0600';

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
