import * as z from 'zod/mini';
import { PluginFaultError } from './errors.js';
import type { JsonValue } from './json.js';
import {
  type AesGcmData,
  type AttestationRequest,
  type AttestationResponse,
  type AttestationToken,
  type EcPublicKey,
  type Evidence,
  NEGOTIATION_PARAMS,
  type NegotiationRequest,
  type NegotiationResponse,
  type SnpEvidence,
  TEE_NAMES,
  type Tee,
} from './messages.js';
import { absentAsUndefined, b64Std, parseWith, taggedUnion, u32, validate } from './schema.js';

/**
 * Validating parsers for the frontend messages: the raw frame payload in,
 * the types of messages.ts out, or an error naming the field. Each schema is
 * pinned to its type at compile time (`Produces`).
 */
type Produces<Out, T> = [Out] extends [T] ? true : never;

export const teeSchema = z.enum(TEE_NAMES);

export const negotiationRequestSchema = z.object({
  version: z.tuple([u32, u32, u32]),
  tee: teeSchema,
});

export const negotiationParamSchema = z.enum(NEGOTIATION_PARAMS);

export const negotiationResponseSchema = z.object({
  challenge: b64Std,
  params: z.array(negotiationParamSchema),
});

export const ecPublicKeySchema = z.object({ x: b64Std, y: b64Std });

export const snpEvidenceSchema = z.object({
  report: b64Std,
  // Absent means none. The reference also rejects null; accepting it is harmless.
  certs_buf: absentAsUndefined(b64Std),
});

export const evidenceSchema = taggedUnion({ Snp: snpEvidenceSchema });

export const attestationRequestSchema = z.object({
  tee: teeSchema,
  evidence: evidenceSchema,
  challenge: b64Std,
  key: ecPublicKeySchema,
});

export const aesGcmDataSchema = z.object({
  epk: ecPublicKeySchema,
  wrapped_cek: b64Std,
  aad: b64Std,
  iv: b64Std,
  tag: b64Std,
});

export const attestationTokenSchema = taggedUnion({ Jwt: z.string(), Cwt: z.string() });

export const attestationResponseSchema = z.object({
  success: z.boolean(),
  // Present-but-null is an error upstream (custom String deserializer); absent is None.
  secret: z.optional(b64Std),
  decryption: absentAsUndefined(aesGcmDataSchema),
  token: absentAsUndefined(attestationTokenSchema),
});

export const parseNegotiationRequest = (payload: Uint8Array | string): NegotiationRequest =>
  parseWith('NegotiationRequest', negotiationRequestSchema, payload);
export const parseNegotiationResponse = (payload: Uint8Array | string): NegotiationResponse =>
  parseWith('NegotiationResponse', negotiationResponseSchema, payload);
export const parseAttestationRequest = (payload: Uint8Array | string): AttestationRequest =>
  parseWith('AttestationRequest', attestationRequestSchema, payload);
/** The same, for a frame whose JSON was already parsed (with parseStrictJson): each frame is parsed once. */
export const negotiationRequestFromJson = (json: JsonValue): NegotiationRequest =>
  validate('NegotiationRequest', negotiationRequestSchema, json);
export const attestationRequestFromJson = (json: JsonValue): AttestationRequest =>
  validate('AttestationRequest', attestationRequestSchema, json);
export const parseAttestationResponse = (payload: Uint8Array | string): AttestationResponse =>
  parseWith('AttestationResponse', attestationResponseSchema, payload);

// Compile-time: what each schema outputs is a value of its message type.
export const schemaTypesMatch: [
  Produces<z.output<typeof negotiationRequestSchema>, NegotiationRequest>,
  Produces<z.output<typeof negotiationResponseSchema>, NegotiationResponse>,
  Produces<z.output<typeof ecPublicKeySchema>, EcPublicKey>,
  Produces<z.output<typeof snpEvidenceSchema>, SnpEvidence>,
  Produces<z.output<typeof evidenceSchema>, Evidence>,
  Produces<z.output<typeof attestationRequestSchema>, AttestationRequest>,
  Produces<z.output<typeof aesGcmDataSchema>, AesGcmData>,
  Produces<z.output<typeof attestationTokenSchema>, AttestationToken>,
  Produces<z.output<typeof teeSchema>, Tee>,
] = [true, true, true, true, true, true, true, true, true];

// What a backend returns is checked before it is serialized: a plugin's
// mistake becomes its own coded fault and the guest's failure answer, never
// a throw past the session's outcome or a malformed frame on the wire.

function fault(backend: string, what: string): PluginFaultError {
  return new PluginFaultError(backend, `returned ${what}`);
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A backend's NegotiationResponse, checked. */
export function checkNegotiationResponse(value: unknown, backend: string): NegotiationResponse {
  if (!isRecord(value)) throw fault(backend, 'a negotiation result that is not an object');
  if (!isBytes(value.challenge)) throw fault(backend, 'a challenge that is not a Uint8Array');
  if (!Array.isArray(value.params) || !value.params.every((p) => (NEGOTIATION_PARAMS as readonly unknown[]).includes(p))) {
    throw fault(backend, `params other than ${NEGOTIATION_PARAMS.join(', ')}`);
  }
  return { challenge: value.challenge, params: value.params as NegotiationResponse['params'] };
}

/** A backend's AttestationResponse, checked; success:true must carry the secret and how to decrypt it. */
export function checkAttestationResponse(value: unknown, backend: string): AttestationResponse {
  if (!isRecord(value) || typeof value.success !== 'boolean') throw fault(backend, 'an attestation result without a boolean `success`');
  if (!value.success) return { success: false };
  const { secret, decryption, token } = value;
  if (!isBytes(secret)) throw fault(backend, 'success:true without a `secret` Uint8Array');
  if (!isRecord(decryption) || !isRecord(decryption.epk) || !isBytes(decryption.epk.x) || !isBytes(decryption.epk.y)) {
    throw fault(backend, 'success:true without `decryption.epk` {x, y} as Uint8Arrays');
  }
  for (const k of ['wrapped_cek', 'aad', 'iv', 'tag'] as const)
    if (!isBytes(decryption[k])) throw fault(backend, `decryption.${k} that is not a Uint8Array`);
  if (token !== undefined && !(isRecord(token) && (token.tag === 'Jwt' || token.tag === 'Cwt') && typeof token.value === 'string')) {
    throw fault(backend, "a token other than { tag: 'Jwt' | 'Cwt', value: string }");
  }
  return value as unknown as AttestationResponse;
}
