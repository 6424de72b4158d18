import { createCipheriv, createDecipheriv, createECDH, createHash, randomBytes } from 'node:crypto';
import { encodeUrl } from './base64.js';
import { CryptoError } from './errors.js';
import type { AesGcmData, AttestationResponse, EcPublicKey } from './messages.js';

/**
 * ECDH-ES+A256KW with A256GCM on P-521 (RFC 7518 §4.6, §4.4, §5.3), both
 * directions: encryption is what a KBS does for a resource, decryption what
 * SVSM does with the AttestationResponse (PROTOCOL.md §5).
 *
 * Every primitive is node:crypto's (OpenSSL): P-521 ECDH measured ~4.5 ms
 * against ~12 ms for a pure-JS curve here, which matters to the test KBS
 * and the guest simulator (the proxy itself does no crypto), and AES-KW and
 * AES-GCM get hardware AES. OpenSSL checks that a peer point is on the curve.
 */

export const P521_COORDINATE_BYTES = 66;
export const JWE_ALG = 'ECDH-ES+A256KW';
export const JWE_ENC = 'A256GCM';

export interface P521KeyPair {
  /** The private scalar d, 66 bytes big-endian. Never log or serialize it. */
  readonly secretKey: Uint8Array;
  readonly publicKey: EcPublicKey;
}

export function generateP521KeyPair(): P521KeyPair {
  const ecdh = createECDH('secp521r1');
  ecdh.generateKeys();
  return pairOf(ecdh);
}

export function p521KeyPairFromSecret(secretKey: Uint8Array): P521KeyPair {
  const ecdh = createECDH('secp521r1');
  try {
    ecdh.setPrivateKey(secretKey);
  } catch (err) {
    throw new CryptoError('not a P-521 private key', { cause: err });
  }
  return pairOf(ecdh);
}

function pairOf(ecdh: ReturnType<typeof createECDH>): P521KeyPair {
  // OpenSSL drops leading zero bytes of d; the wire and the vectors use 66 bytes.
  const d = ecdh.getPrivateKey();
  const secretKey = new Uint8Array(P521_COORDINATE_BYTES);
  secretKey.set(d, P521_COORDINATE_BYTES - d.length);
  const uncompressed = ecdh.getPublicKey();
  return {
    secretKey,
    publicKey: {
      x: uncompressed.slice(1, 1 + P521_COORDINATE_BYTES),
      y: uncompressed.slice(1 + P521_COORDINATE_BYTES),
    },
  };
}

function uncompressedPoint(key: EcPublicKey): Uint8Array {
  if (key.x.length !== P521_COORDINATE_BYTES || key.y.length !== P521_COORDINATE_BYTES) {
    throw new CryptoError(`P-521 coordinates must be ${P521_COORDINATE_BYTES} bytes each (got x=${key.x.length}, y=${key.y.length})`);
  }
  const out = new Uint8Array(1 + 2 * P521_COORDINATE_BYTES);
  out[0] = 0x04;
  out.set(key.x, 1);
  out.set(key.y, 1 + P521_COORDINATE_BYTES);
  return out;
}

/** Z: the x coordinate of d·Q. Rejects a point that is not on the curve. */
export function ecdhZ(secretKey: Uint8Array, peer: EcPublicKey): Uint8Array {
  const point = uncompressedPoint(peer);
  const ecdh = createECDH('secp521r1');
  try {
    ecdh.setPrivateKey(secretKey);
  } catch (err) {
    throw new CryptoError('not a P-521 private key', { cause: err });
  }
  try {
    // 66 bytes: OpenSSL pads the x coordinate to the field size.
    return new Uint8Array(ecdh.computeSecret(point));
  } catch (err) {
    throw new CryptoError('ECDH on P-521 failed: the peer key is not a valid curve point', { cause: err });
  }
}

function be32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/**
 * Concat KDF, NIST SP 800-56A §5.8.1 with SHA-256, as profiled by RFC 7518
 * §4.6.2: OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo,
 * each of the first three a 32-bit length then the bytes (both party infos
 * empty). 256 output bits need one round: SHA-256(be32(1) || Z || OtherInfo).
 */
export function concatKdf(Z: Uint8Array, algorithmId: string = JWE_ALG, keyBits = 256): Uint8Array {
  if (keyBits !== 256) throw new CryptoError(`concatKdf: only 256-bit keys are supported, got ${keyBits}`);
  const alg = Buffer.from(algorithmId, 'ascii');
  const OtherInfo = Buffer.concat([be32(alg.length), alg, be32(0), be32(0), be32(keyBits)]);
  return new Uint8Array(createHash('sha256').update(be32(1)).update(Z).update(OtherInfo).digest());
}

const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex'); // RFC 3394 §2.2.3.1 default IV

/** AES-256 key wrap, RFC 3394. */
export function aesKeyWrap(kek: Uint8Array, key: Uint8Array): Uint8Array {
  const c = createCipheriv('id-aes256-wrap', kek, KW_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

/** AES-256 key unwrap, RFC 3394; fails if the integrity check value does not match. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Uint8Array {
  try {
    const d = createDecipheriv('id-aes256-wrap', kek, KW_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (err) {
    throw new CryptoError('AES key unwrap failed: wrong key or corrupted wrapped_cek', { cause: err });
  }
}

export function aesGcmEncrypt(cek: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) {
  const c = createCipheriv('aes-256-gcm', cek, iv);
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

/** AES-256-GCM with a 96-bit IV and a full 128-bit tag, as A256GCM requires (RFC 7518 §5.3): a short tag is refused, not accepted. */
export function aesGcmDecrypt(cek: Uint8Array, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array {
  if (iv.length !== 12 || tag.length !== 16)
    throw new CryptoError(`A256GCM needs a 12-byte IV and a 16-byte tag, got ${iv.length} and ${tag.length}`);
  try {
    const d = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch (err) {
    throw new CryptoError('AES-256-GCM decryption failed: authentication tag mismatch (wrong AAD, key or data)', { cause: err });
  }
}

/** The JWE protected header this profile uses (RFC 7516 §4), its key members decoded. */
export interface JweProtectedHeader {
  readonly alg: typeof JWE_ALG;
  readonly enc: typeof JWE_ENC;
  readonly epk: { readonly kty: 'EC'; readonly crv: 'P-521'; readonly x: Uint8Array; readonly y: Uint8Array };
}

/**
 * A flattened JWE, one shape whether it was made here (jweEncrypt), parsed
 * from a server (parseKbsJwe) or is about to be sent (serializeKbsJwe).
 */
export interface Jwe {
  /** The protected header exactly as on the wire: it is what the AAD authenticates. */
  readonly protectedWire: string;
  readonly header: JweProtectedHeader;
  readonly encryptedKey: Uint8Array;
  readonly iv: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
  /** The JWE's own `aad` member, if it has one. */
  readonly aad?: string | undefined;
}

/**
 * Encrypts `plaintext` to a P-521 recipient key the way Trustee's KBS does
 * (RFC 7516 §5.1): ephemeral key, Z, KEK by Concat KDF, random CEK wrapped
 * under KEK, AES-256-GCM with AAD = ASCII(protected header).
 */
export function jweEncrypt(plaintext: Uint8Array, recipient: EcPublicKey, ephemeral: P521KeyPair = generateP521KeyPair()): Jwe {
  const Z = ecdhZ(ephemeral.secretKey, recipient);
  const KEK = concatKdf(Z);
  const CEK = randomBytes(32);
  const encryptedKey = aesKeyWrap(KEK, CEK);
  const { x, y } = ephemeral.publicKey;
  const wireHeader = { alg: JWE_ALG, enc: JWE_ENC, epk: { crv: 'P-521', kty: 'EC', x: encodeUrl(x), y: encodeUrl(y) } };
  const protectedWire = encodeUrl(Buffer.from(JSON.stringify(wireHeader), 'utf8'));
  const iv = randomBytes(12);
  const { ciphertext, tag } = aesGcmEncrypt(CEK, iv, jweAad(protectedWire), plaintext);
  const header = { alg: JWE_ALG, enc: JWE_ENC, epk: { kty: 'EC', crv: 'P-521', x, y } } as const;
  return { protectedWire, header, encryptedKey, iv, ciphertext, tag };
}

/** JWE Additional Authenticated Data, RFC 7516 §5.1 step 14: ASCII(protected [ '.' aad ]). */
export function jweAad(protectedWire: string, aad?: string): Uint8Array {
  return Buffer.from(aad === undefined ? protectedWire : `${protectedWire}.${aad}`, 'ascii');
}

/**
 * The guest-facing answer for a JWE (PROTOCOL.md §6). The AAD is the
 * protected header as received, not re-serialized as the reference does,
 * so any server's header byte form decrypts.
 */
export function jweToAttestationResponse(jwe: Jwe, token: string): AttestationResponse {
  return {
    success: true,
    secret: jwe.ciphertext,
    decryption: {
      epk: { x: jwe.header.epk.x, y: jwe.header.epk.y },
      wrapped_cek: jwe.encryptedKey,
      aad: jweAad(jwe.protectedWire, jwe.aad),
      iv: jwe.iv,
      tag: jwe.tag,
    },
    token: { tag: 'Jwt', value: token },
  };
}

/**
 * A secret sealed to the guest's P-521 key, as the guest's answer: what a
 * backend that holds the secret itself returns from `attest` (the KBS
 * does the same sealing on its side). `token` is the attestation token the
 * answer carries (a JWT).
 */
export function sealToGuest(secret: Uint8Array, guestKey: EcPublicKey, token: string): AttestationResponse {
  return jweToAttestationResponse(jweEncrypt(secret, guestKey), token);
}

/** What SVSM does with a successful AttestationResponse (PROTOCOL.md §5). */
export function decryptSecret(secretKey: Uint8Array, decryption: AesGcmData, secret: Uint8Array): Uint8Array {
  const Z = ecdhZ(secretKey, decryption.epk);
  const KEK = concatKdf(Z);
  const CEK = aesKeyUnwrap(KEK, decryption.wrapped_cek);
  return aesGcmDecrypt(CEK, decryption.iv, decryption.aad, secret, decryption.tag);
}
