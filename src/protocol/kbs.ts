import * as z from 'zod/mini';
import { encodeStd, encodeUrl } from './base64.js';
import { InvalidMessageError } from './errors.js';
import type { Jwe } from './jwe.js';
import type { AttestationRequest, EcPublicKey, Tee } from './messages.js';
import { NEGOTIATION_PARAMS, type NegotiationParam } from './messages.js';
import { b64Std, b64Url, validate } from './schema.js';

/**
 * Key Broker Service protocol 0.4.0 (Trustee), PROTOCOL.md §6: the bodies the
 * proxy sends, the answers it accepts, and the mapping of a resource JWE onto
 * the guest's AttestationResponse. Pure: no HTTP here.
 */

export const KBS_PROTOCOL_VERSION = '0.4.0';
export const KBS_COOKIE_NAME = 'kbs-session-id';

/** What the guest is told to hash into REPORT_DATA, in the order kbs.rs uses. */
export const KBS_NEGOTIATION_PARAMS: readonly NegotiationParam[] = [NEGOTIATION_PARAMS[0], NEGOTIATION_PARAMS[1]];

/** POST /kbs/v0/auth body. `extra-params` is the empty string, not {}. */
export function serializeKbsRequest(tee: Tee): string {
  return JSON.stringify({ version: KBS_PROTOCOL_VERSION, tee, 'extra-params': '' });
}

export const kbsRequestSchema = z.object({
  version: z.string(),
  tee: z.string(),
  'extra-params': z.unknown(),
});

/** /auth reply. The nonce must be canonical standard base64; extra-params must be present (any value). */
export const kbsChallengeSchema = z.object({
  nonce: b64Std,
  'extra-params': z.unknown().check(z.refine((v) => v !== undefined, { message: 'missing field' })),
});

/** The decoded /auth nonce: the challenge the guest binds into its report. */
export function parseKbsChallenge(json: unknown): Uint8Array {
  return validate('KBS Challenge', kbsChallengeSchema, json).nonce;
}

export function serializeKbsChallenge(nonce: Uint8Array): string {
  return JSON.stringify({ nonce: encodeStd(nonce), 'extra-params': '' });
}

/** TeePubKey: the guest's P-521 key as an EC JWK, coordinates base64url without padding. */
export function teePubKey(key: EcPublicKey) {
  return { kty: 'EC', crv: 'P-521', alg: 'ECDH-ES+A256KW', x: encodeUrl(key.x), y: encodeUrl(key.y) } as const;
}

/**
 * POST /kbs/v0/attest body built from the guest's AttestationRequest. The
 * nonce is the re-encoded challenge; `primary_evidence` keys are sorted
 * (it passes through serde_json::Value upstream) and `certs-buf` is null when absent.
 */
export function serializeKbsAttestation(req: AttestationRequest): string {
  const snp = req.evidence.value;
  return JSON.stringify({
    'init-data': null,
    'runtime-data': { nonce: encodeStd(req.challenge), 'tee-pubkey': teePubKey(req.key) },
    'tee-evidence': {
      primary_evidence: {
        'certs-buf': snp.certs_buf === undefined ? null : encodeStd(snp.certs_buf),
        'snp-report': encodeStd(snp.report),
      },
      additional_evidence: '',
    },
  });
}

export const kbsTeePubKeySchema = z.object({
  kty: z.literal('EC'),
  crv: z.literal('P-521'),
  alg: z.optional(z.string()),
  x: b64Url,
  y: b64Url,
});

/** The attestation body as a KBS reads it (used by the built-in test KBS). */
export const kbsAttestationSchema = z.object({
  'init-data': z.optional(z.unknown()),
  'runtime-data': z.object({
    nonce: b64Std,
    'tee-pubkey': kbsTeePubKeySchema,
  }),
  'tee-evidence': z.object({
    primary_evidence: z.object({
      'snp-report': b64Std,
      'certs-buf': z.nullish(b64Std),
    }),
    additional_evidence: z.optional(z.unknown()),
  }),
});

export const kbsTokenResponseSchema = z.object({ token: z.string() });

export function parseKbsTokenResponse(json: unknown): string {
  return validate('KBS attest response', kbsTokenResponseSchema, json).token;
}

/** RFC 7807-style error body a KBS may send; used only to explain a refusal. */
export const kbsErrorBodySchema = z.object({ type: z.optional(z.string()), detail: z.optional(z.string()) });

/** Flattened JWE JSON serialization (kbs_types::Response); binary members base64url without padding. */
export const kbsJweSchema = z.object({
  protected: z.string(),
  encrypted_key: b64Url,
  iv: b64Url,
  ciphertext: b64Url,
  tag: b64Url,
  aad: z.optional(z.string()),
});

export const jweProtectedHeaderSchema = z.object({
  alg: z.literal('ECDH-ES+A256KW'),
  enc: z.literal('A256GCM'),
  epk: z.object({ kty: z.literal('EC'), crv: z.literal('P-521'), x: b64Url, y: b64Url }),
});

/** Built once: a schema per call showed in profiles. */
const protectedHeaderBytesSchema = z.object({ protected: b64Url });

export function parseKbsJwe(json: unknown): Jwe {
  const jwe = validate('KBS resource JWE', kbsJweSchema, json);
  const headerBytes = validate('KBS resource JWE', protectedHeaderBytesSchema, { protected: jwe.protected }).protected;
  let headerJson: unknown;
  try {
    headerJson = JSON.parse(Buffer.from(headerBytes).toString('utf8'));
  } catch {
    headerJson = undefined;
  }
  const header = validate('KBS resource JWE protected header', jweProtectedHeaderSchema, headerJson);
  // What the guest will accept, checked here so a bad JWE is the server's fault in the log, not a guest panic.
  const h = headerJson as Record<string, unknown>;
  if ('zip' in h)
    throw new InvalidMessageError(
      'KBS resource JWE protected header',
      'zip',
      'compression is not supported (the guest does not decompress)',
    );
  if ('crit' in h)
    throw new InvalidMessageError('KBS resource JWE protected header', 'crit', 'critical header extensions are not supported');
  for (const [field, bytes, want] of [
    ['iv', jwe.iv, 12],
    ['tag', jwe.tag, 16],
    ['encrypted_key', jwe.encrypted_key, 40],
  ] as const) {
    if (bytes.length !== want)
      throw new InvalidMessageError(
        'KBS resource JWE',
        field,
        `must be ${want} bytes (A256GCM / A256KW of a 256-bit key), got ${bytes.length}`,
      );
  }
  return {
    protectedWire: jwe.protected,
    header,
    encryptedKey: jwe.encrypted_key,
    iv: jwe.iv,
    ciphertext: jwe.ciphertext,
    tag: jwe.tag,
    aad: jwe.aad,
  };
}

/** Serializes a flattened JWE the way Trustee does (field order of kbs_types::Response). */
export function serializeKbsJwe(parts: Jwe): string {
  return JSON.stringify({
    protected: parts.protectedWire,
    encrypted_key: encodeUrl(parts.encryptedKey),
    iv: encodeUrl(parts.iv),
    ciphertext: encodeUrl(parts.ciphertext),
    tag: encodeUrl(parts.tag),
    ...(parts.aad === undefined ? {} : { aad: parts.aad }),
  });
}
