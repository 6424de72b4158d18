import { encodeStd } from './base64.js';

/**
 * The libaproxy frontend messages (guest <-> proxy), PROTOCOL.md §4: their
 * types and serializers. The serializers return the exact JSON the reference
 * writes (field order, omitted vs null). Validating parsers are in
 * message-parsers.ts; these types are what they produce.
 */

/** kbs_types::Tee names as they appear on the wire. */
export const TEE_NAMES = [
  'azsnpvtpm',
  'aztdxvtpm',
  'nvidia',
  'sev',
  'sgx',
  'snp',
  'tdx',
  'cca',
  'csv',
  'se',
  'hygondcu',
  'tpm',
  'sample',
  'sampledevice',
] as const;
export type Tee = (typeof TEE_NAMES)[number];

/** The only libaproxy protocol version that exists. */
export const PROTOCOL_VERSION = [0, 1, 0] as const;

/** What the guest hashes into REPORT_DATA, in the order given. */
export const NEGOTIATION_PARAMS = ['EcPublicKeyBytes', 'Challenge'] as const;
export type NegotiationParam = (typeof NEGOTIATION_PARAMS)[number];

export interface NegotiationRequest {
  readonly version: [number, number, number];
  readonly tee: Tee;
}

export interface NegotiationResponse {
  readonly challenge: Uint8Array;
  readonly params: NegotiationParam[];
}

/** The guest's key. Named EcP256PublicKey upstream; the guest's key is P-521. */
export interface EcPublicKey {
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

export interface SnpEvidence {
  readonly report: Uint8Array;
  readonly certs_buf?: Uint8Array | undefined;
}

/** serde's externally tagged enum: `{"Snp": {…}}` on the wire. */
export type Evidence = { readonly tag: 'Snp'; readonly value: SnpEvidence };

export interface AttestationRequest {
  readonly tee: Tee;
  readonly evidence: Evidence;
  readonly challenge: Uint8Array;
  readonly key: EcPublicKey;
}

export interface AesGcmData {
  readonly epk: EcPublicKey;
  readonly wrapped_cek: Uint8Array;
  readonly aad: Uint8Array;
  readonly iv: Uint8Array;
  readonly tag: Uint8Array;
}

export type AttestationToken = { readonly tag: 'Jwt'; readonly value: string } | { readonly tag: 'Cwt'; readonly value: string };

/** `{ success: false }` alone is a valid value, as on the wire. */
export interface AttestationResponse {
  readonly success: boolean;
  readonly secret?: Uint8Array | undefined;
  readonly decryption?: AesGcmData | undefined;
  readonly token?: AttestationToken | undefined;
}

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

/**
 * The frame aproxy answers any failure with, in either phase:
 * `{"success":false,"decryption":null,"token":null}`. In the attestation
 * phase it is the protocol's failure response. The negotiation phase has no
 * failure message, and silence would hang SVSM (it polls with no timeout),
 * so the same frame is sent there too: SVSM's NegotiationResponse parser
 * rejects it at once (no `challenge` field) and the boot fails with an
 * attestation error in its log. The framing stays intact, so the link
 * serves the next boot.
 */
export const FAILURE_ANSWER = serializeAttestationResponse(ATTESTATION_FAILURE);
