import { createHash } from 'node:crypto';
import type { EcPublicKey, NegotiationParam } from './messages.js';

/**
 * SNP REPORT_DATA binding (PROTOCOL.md §4): SHA-512 over the negotiated params
 * in the order given. `EcPublicKeyBytes` contributes x then y, `Challenge` the
 * challenge bytes. Guest and verifier both compute it.
 */
export function reportDataDigest(params: readonly NegotiationParam[], challenge: Uint8Array, key: EcPublicKey): Uint8Array {
  // node:crypto (OpenSSL): no module to load, which keeps `aproxy/plugin` cheap to import.
  const h = createHash('sha512');
  for (const p of params) {
    if (p === 'Challenge') {
      h.update(challenge);
    } else {
      h.update(key.x);
      h.update(key.y);
    }
  }
  return new Uint8Array(h.digest());
}
