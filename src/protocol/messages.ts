import { z } from 'zod';
import { encodeStd } from './base64.js';
import { b64Std, parseWith, taggedUnion, u32 } from './schema.js';

/**
 * The libaproxy frontend messages (guest <-> proxy), PROTOCOL.md §4.
 * Parsers take the raw frame payload; serializers return the exact JSON the
 * reference writes (field order, omitted vs null).
 */

/** kbs_types::Tee names as they appear on the wire. */
export const TEE_NAMES = [
  'azsnpvtpm', 'aztdxvtpm', 'nvidia', 'sev', 'sgx', 'snp', 'tdx',
  'cca', 'csv', 'se', 'hygondcu', 'tpm', 'sample', 'sampledevice',
] as const;
export const teeSchema = z.enum(TEE_NAMES);
export type Tee = z.output<typeof teeSchema>;

/** The only libaproxy protocol version that exists. */
export const PROTOCOL_VERSION = [0, 1, 0] as const;

export const negotiationRequestSchema = z.object({
  version: z.tuple([u32, u32, u32]),
  tee: teeSchema,
});
export type NegotiationRequest = z.output<typeof negotiationRequestSchema>;

export const NEGOTIATION_PARAMS = ['EcPublicKeyBytes', 'Challenge'] as const;
export const negotiationParamSchema = z.enum(NEGOTIATION_PARAMS);
export type NegotiationParam = z.output<typeof negotiationParamSchema>;

export const negotiationResponseSchema = z.object({
  challenge: b64Std,
  params: z.array(negotiationParamSchema),
});
export type NegotiationResponse = z.output<typeof negotiationResponseSchema>;

/** The guest's key. Named EcP256PublicKey upstream; the guest's key is P-521. */
export const ecPublicKeySchema = z.object({ x: b64Std, y: b64Std });
export type EcPublicKey = z.output<typeof ecPublicKeySchema>;

export const snpEvidenceSchema = z.object({
  report: b64Std,
  // Absent means none. The reference also rejects null; accepting it is harmless.
  certs_buf: b64Std.nullish().transform((v) => v ?? undefined),
});
export type SnpEvidence = z.output<typeof snpEvidenceSchema>;

export const evidenceSchema = taggedUnion({ Snp: snpEvidenceSchema });
export type Evidence = z.output<typeof evidenceSchema>;

export const attestationRequestSchema = z.object({
  tee: teeSchema,
  evidence: evidenceSchema,
  challenge: b64Std,
  key: ecPublicKeySchema,
});
export type AttestationRequest = z.output<typeof attestationRequestSchema>;

export const aesGcmDataSchema = z.object({
  epk: ecPublicKeySchema,
  wrapped_cek: b64Std,
  aad: b64Std,
  iv: b64Std,
  tag: b64Std,
});
export type AesGcmData = z.output<typeof aesGcmDataSchema>;

export const attestationTokenSchema = taggedUnion({ Jwt: z.string(), Cwt: z.string() });
export type AttestationToken = z.output<typeof attestationTokenSchema>;

export const attestationResponseSchema = z.object({
  success: z.boolean(),
  // Present-but-null is an error upstream (custom String deserializer); absent is None.
  secret: b64Std.optional(),
  decryption: aesGcmDataSchema.nullish().transform((v) => v ?? undefined),
  token: attestationTokenSchema.nullish().transform((v) => v ?? undefined),
});
/** Written by hand (not z.output) so that `{ success: false }` alone is a valid value, as on the wire. */
export interface AttestationResponse {
  readonly success: boolean;
  readonly secret?: Uint8Array | undefined;
  readonly decryption?: AesGcmData | undefined;
  readonly token?: AttestationToken | undefined;
}

export const parseNegotiationRequest = (payload: Uint8Array | string): NegotiationRequest =>
  parseWith('NegotiationRequest', negotiationRequestSchema, payload);
export const parseNegotiationResponse = (payload: Uint8Array | string): NegotiationResponse =>
  parseWith('NegotiationResponse', negotiationResponseSchema, payload);
export const parseAttestationRequest = (payload: Uint8Array | string): AttestationRequest =>
  parseWith('AttestationRequest', attestationRequestSchema, payload);
export const parseAttestationResponse = (payload: Uint8Array | string): AttestationResponse =>
  parseWith('AttestationResponse', attestationResponseSchema, payload);

// Serializers build objects in the reference's field order; JSON.stringify
// keeps insertion order and, like serde_json, does not escape '/'.

const keyJson = (k: EcPublicKey) => ({ x: encodeStd(k.x), y: encodeStd(k.y) });

export function serializeNegotiationRequest(m: NegotiationRequest): string {
  return JSON.stringify({ version: m.version, tee: m.tee });
}

export function serializeNegotiationResponse(m: NegotiationResponse): string {
  return JSON.stringify({ challenge: encodeStd(m.challenge), params: m.params });
}

export function serializeAttestationRequest(m: AttestationRequest): string {
  const snp = m.evidence.value;
  const evidence =
    snp.certs_buf === undefined
      ? { report: encodeStd(snp.report) }
      : { report: encodeStd(snp.report), certs_buf: encodeStd(snp.certs_buf) };
  return JSON.stringify({
    tee: m.tee,
    evidence: { [m.evidence.tag]: evidence },
    challenge: encodeStd(m.challenge),
    key: keyJson(m.key),
  });
}

export function serializeAttestationResponse(m: AttestationResponse): string {
  const d = m.decryption;
  return JSON.stringify({
    success: m.success,
    secret: m.secret === undefined ? undefined : encodeStd(m.secret),
    decryption:
      d === undefined
        ? null
        : {
            epk: keyJson(d.epk),
            wrapped_cek: encodeStd(d.wrapped_cek),
            aad: encodeStd(d.aad),
            iv: encodeStd(d.iv),
            tag: encodeStd(d.tag),
          },
    token: m.token === undefined ? null : { [m.token.tag]: m.token.value },
  });
}

/** The one failure answer the reference ever sends: {"success":false,"decryption":null,"token":null}. */
export const ATTESTATION_FAILURE: AttestationResponse = Object.freeze({ success: false });
