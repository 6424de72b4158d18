/** Bad usage: one line on stderr, exit code 2 (cli/main.ts). */
export class UsageError extends Error {}

export function parseHex(flag: string, text: string, bytes?: number): Buffer {
  const clean = text.startsWith('0x') ? text.slice(2) : text;
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new UsageError(`--${flag} must be hex digits (an even number of 0-9a-f)`);
  const b = Buffer.from(clean, 'hex');
  if (bytes !== undefined && b.length !== bytes)
    throw new UsageError(`--${flag} must be ${bytes} bytes (${bytes * 2} hex digits), got ${b.length}`);
  if (b.length === 0) throw new UsageError(`--${flag} must not be empty`);
  return b;
}

export function positiveInt(flag: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw new UsageError(`--${flag} must be a positive integer, got ${String(v)}`);
  return v;
}

/** A flag read as text (yargs would make "soon" NaN): the error shows what was typed. */
export function nonNegativeInt(flag: string, text: string): number {
  const v = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(v)) throw new UsageError(`--${flag} must be a whole number, 0 or more, got ${text}`);
  return v;
}

export function parseVsockAddress(text: string): { cid: number; port: number } {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--vsock must be CID:PORT, e.g. 2:1995, got ${text}`);
  return { cid: Number(m[1]), port: Number(m[2]) };
}
