import { readFileSync } from 'node:fs';

/**
 * Open files kept for what is not a guest connection: a KBS pool holds up to
 * 128 connections, the metrics endpoint 16, and listeners, logs, plugins and
 * Node itself the rest. Guests that take everything else are refused, so the
 * ones admitted can still reach the server (EMFILE would fail them instead).
 */
export const OPEN_FILES_RESERVE = 256;

/** The process's open-file limit (Node raises the soft limit to the hard one at start), or undefined where /proc does not say. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** How many guest connections of every transport the proxy admits at once. */
export function guestConnectionCap(limit = openFileLimit()): number {
  return limit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, limit - OPEN_FILES_RESERVE);
}
