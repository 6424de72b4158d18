import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  aesKeyUnwrap,
  buildSyntheticReport,
  concatKdf,
  decryptSecret,
  ecdhZ,
  generateP521KeyPair,
  jweEncrypt,
  jweToAttestationResponse,
  p521KeyPairFromSecret,
  parseKbsJwe,
  parseSnpReport,
  reportDataDigest,
  SNP_REPORT_BYTES,
  sealToGuest,
  serializeAttestationResponse,
  serializeKbsJwe,
} from '../../src/protocol/index.js';
import { vectorJson } from '../support/vectors.js';

interface KnownAnswer {
  guest_private_key_d_hex: string;
  guest_public_key: { x_hex: string; y_hex: string };
  Z_hex: string;
  wrapping_key_hex: string;
  cek_hex: string;
  jwe: Record<string, string>;
  plaintext_hex: string;
  expected_decryption: Record<string, unknown>;
  expected_secret: string;
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('known-answer JWE (independent implementation)', () => {
  const ka = vectorJson<KnownAnswer>('jwe-p521-known-answer.json');
  const guest = p521KeyPairFromSecret(hex(ka.guest_private_key_d_hex));
  const jwe = parseKbsJwe(ka.jwe);

  test('the guest public key derives from the private key', () => {
    assert.equal(toHex(guest.publicKey.x), ka.guest_public_key.x_hex);
    assert.equal(toHex(guest.publicKey.y), ka.guest_public_key.y_hex);
  });

  test('Z, wrapping key and CEK match every intermediate value', () => {
    const Z = ecdhZ(guest.secretKey, jwe.header.epk);
    assert.equal(toHex(Z), ka.Z_hex);
    const kek = concatKdf(Z);
    assert.equal(toHex(kek), ka.wrapping_key_hex);
    assert.equal(toHex(aesKeyUnwrap(kek, jwe.encryptedKey)), ka.cek_hex);
  });

  test('maps to exactly the expected decryption and secret fields', () => {
    const resp = jweToAttestationResponse(jwe, 'tok');
    const json = JSON.parse(serializeAttestationResponse(resp));
    assert.deepEqual(json.decryption, ka.expected_decryption);
    assert.equal(json.secret, ka.expected_secret);
  });

  test('the guest decrypts the mapped response to the plaintext', () => {
    const resp = jweToAttestationResponse(jwe, 'tok');
    const plain = decryptSecret(guest.secretKey, resp.decryption!, resp.secret!);
    assert.equal(toHex(plain), ka.plaintext_hex);
  });

  test('a tampered AAD makes decryption fail with a crypto error', () => {
    const resp = jweToAttestationResponse(jwe, 'tok');
    const aad = Uint8Array.from(resp.decryption!.aad);
    aad[5] = (aad[5] ?? 0) ^ 1;
    assert.throws(() => decryptSecret(guest.secretKey, { ...resp.decryption!, aad }, resp.secret!), { code: 'CRYPTO' });
  });
});

describe('JWE encrypt then decrypt', () => {
  test('a secret encrypted to a fresh guest key decrypts through the frontend mapping', () => {
    const guest = generateP521KeyPair();
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i * 3);
    const parts = jweEncrypt(secret, guest.publicKey);
    const jwe = parseKbsJwe(JSON.parse(serializeKbsJwe(parts)));
    const resp = jweToAttestationResponse(jwe, 'tok');
    assert.deepEqual(Buffer.from(decryptSecret(guest.secretKey, resp.decryption!, resp.secret!)), Buffer.from(secret));
  });

  test('one JWE shape: what jweEncrypt makes serializes, parses back equal, and sealToGuest is the guest answer for it', () => {
    const guest = generateP521KeyPair();
    const made = jweEncrypt(Buffer.from('sealed'), guest.publicKey);
    const parsed = parseKbsJwe(JSON.parse(serializeKbsJwe(made)));
    assert.equal(serializeKbsJwe(parsed), serializeKbsJwe(made));
    assert.deepEqual(
      [parsed.header.alg, parsed.header.enc, Buffer.from(parsed.header.epk.x), Buffer.from(parsed.header.epk.y)],
      [made.header.alg, made.header.enc, Buffer.from(made.header.epk.x), Buffer.from(made.header.epk.y)],
    );
    const answer = sealToGuest(Buffer.from('sealed'), guest.publicKey, 'tok');
    assert.equal(Buffer.from(decryptSecret(guest.secretKey, answer.decryption!, answer.secret!)).toString(), 'sealed');
    assert.deepEqual(answer.token, { tag: 'Jwt', value: 'tok' });
  });

  test('another key cannot decrypt it', () => {
    const guest = generateP521KeyPair();
    const other = generateP521KeyPair();
    const jwe = parseKbsJwe(JSON.parse(serializeKbsJwe(jweEncrypt(Buffer.from('top secret'), guest.publicKey))));
    const resp = jweToAttestationResponse(jwe, 'tok');
    assert.throws(() => decryptSecret(other.secretKey, resp.decryption!, resp.secret!), { code: 'CRYPTO' });
  });

  test('the relay is as strict as the guest: IV 12 bytes, tag 16, wrapped key 40, no zip, no crit', () => {
    const guest = generateP521KeyPair();
    const good = JSON.parse(serializeKbsJwe(jweEncrypt(Buffer.from('s'), guest.publicKey))) as Record<string, string>;
    const b64url = (n: number) => Buffer.alloc(n, 1).toString('base64url');
    const withHeader = (extra: Record<string, unknown>) => {
      const h = { ...(JSON.parse(Buffer.from(good.protected ?? '', 'base64url').toString()) as object), ...extra };
      return { ...good, protected: Buffer.from(JSON.stringify(h)).toString('base64url') };
    };
    for (const [jwe, re] of [
      [{ ...good, iv: b64url(16) }, /iv: must be 12 bytes/],
      [{ ...good, tag: b64url(12) }, /tag: must be 16 bytes/],
      [{ ...good, encrypted_key: b64url(32) }, /encrypted_key: must be 40 bytes/],
      [withHeader({ zip: 'DEF' }), /zip: compression is not supported/],
      [withHeader({ crit: ['exp'] }), /crit: critical header extensions/],
    ] as const) {
      assert.throws(() => parseKbsJwe(jwe), { code: 'INVALID_MESSAGE', message: re });
    }
  });

  test('AES-GCM decryption refuses a truncated tag instead of checking fewer bits', () => {
    const key = Buffer.alloc(32, 2);
    const iv = Buffer.alloc(12, 3);
    const { ciphertext, tag } = aesGcmEncrypt(key, iv, Buffer.alloc(0), Buffer.from('secret'));
    assert.throws(() => aesGcmDecrypt(key, iv, Buffer.alloc(0), ciphertext, tag.subarray(0, 8)), {
      code: 'CRYPTO',
      message: /16-byte tag/,
    });
    assert.equal(Buffer.from(aesGcmDecrypt(key, iv, Buffer.alloc(0), ciphertext, tag)).toString(), 'secret');
  });

  test('a point that is not on the curve is refused', () => {
    const guest = generateP521KeyPair();
    const bad = { x: guest.publicKey.x, y: Uint8Array.from(guest.publicKey.y).fill(7, 60) };
    assert.throws(() => ecdhZ(guest.secretKey, bad), { code: 'CRYPTO' });
  });
});

describe('report data binding', () => {
  test('is SHA-512 over the params in the order given', () => {
    const key = { x: new Uint8Array(66).fill(1), y: new Uint8Array(66).fill(2) };
    const challenge = new Uint8Array(32).fill(3);
    const want = createHash('sha512').update(key.x).update(key.y).update(challenge).digest();
    assert.deepEqual(Buffer.from(reportDataDigest(['EcPublicKeyBytes', 'Challenge'], challenge, key)), want);
    const reversed = createHash('sha512').update(challenge).update(key.x).update(key.y).digest();
    assert.deepEqual(Buffer.from(reportDataDigest(['Challenge', 'EcPublicKeyBytes'], challenge, key)), reversed);
  });
});

describe('SEV-SNP report', () => {
  test('a synthetic report parses back to its measurement and report data', () => {
    const measurement = Uint8Array.from({ length: 48 }, (_, i) => 0xa0 + i);
    const reportData = Uint8Array.from({ length: 64 }, (_, i) => i);
    const r = parseSnpReport(buildSyntheticReport({ measurement, reportData }));
    assert.deepEqual(r.measurement, measurement);
    assert.deepEqual(r.reportData, reportData);
    assert.equal(r.version, 3);
    assert.equal(r.vmpl, 0);
    assert.equal(r.signatureAlgo, 1);
  });

  test('fields sit at the documented offsets', () => {
    const bytes = Uint8Array.from({ length: SNP_REPORT_BYTES }, (_, i) => i & 0xff);
    const r = parseSnpReport(bytes);
    assert.equal(r.version, 0x03020100);
    assert.equal(r.measurement[0], 0x90);
    assert.equal(r.reportData[0], 0x50);
    assert.equal(r.chipId[0], 0xa0);
    assert.equal(r.policy, 0x0f0e0d0c0b0a0908n);
  });

  test('a report of any other size is refused with a clear error', () => {
    assert.throws(() => parseSnpReport(new Uint8Array(1183)), /1184 bytes, got 1183/);
    assert.throws(() => parseSnpReport(new Uint8Array(2000)), { code: 'INVALID_REPORT' });
  });
});
