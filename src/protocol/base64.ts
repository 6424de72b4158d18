import { InvalidBase64Error } from './errors.js';

// Node's decoder silently skips characters it does not know and tolerates
// missing padding. The guest's decoder (base64 0.22, STANDARD) does not, so
// neither do we: a value is accepted only if re-encoding it gives the input
// back, which also rules out non-zero trailing bits.

const STD_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_ALPHABET = /^[A-Za-z0-9_-]*$/;

/** Standard alphabet with `=` padding, as every byte field on the guest side. */
export function encodeStd(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** base64url without padding, as JWK and JWE members on the KBS side. */
export function encodeUrl(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function decodeStd(text: string): Uint8Array {
  if (!STD_ALPHABET.test(text)) {
    throw new InvalidBase64Error(`invalid character for standard base64 at offset ${firstBad(text, /[A-Za-z0-9+/=]/)}`);
  }
  if (text.length % 4 !== 0) {
    throw new InvalidBase64Error(`standard base64 must be padded to a multiple of 4 characters (got ${text.length})`);
  }
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) {
    throw new InvalidBase64Error('non-canonical standard base64 (wrong padding or non-zero trailing bits)');
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeUrl(text: string): Uint8Array {
  if (!URL_ALPHABET.test(text)) {
    throw new InvalidBase64Error(`invalid character for unpadded base64url at offset ${firstBad(text, /[A-Za-z0-9_-]/)}`);
  }
  if (text.length % 4 === 1) {
    throw new InvalidBase64Error(`impossible base64url length ${text.length}`);
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) {
    throw new InvalidBase64Error('non-canonical base64url (non-zero trailing bits)');
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function firstBad(text: string, allowed: RegExp): number {
  for (let i = 0; i < text.length; i++) {
    if (!allowed.test(text[i] ?? '')) return i;
  }
  // Only misplaced '=' can bring us here.
  return text.indexOf('=');
}
