import { createHash } from 'node:crypto';

/** First 12 hex digits of SHA-256: enough to correlate, useless to replay. */
export function fingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 12);
}
