import { addExtension, decode as decodeCbor, Tag } from 'cbor-x';
import { decodeUrl, parseSnpReport, SNP_REPORT_BYTES, type SnpReport } from '../protocol/index.js';

/** SEV-SNP guest policy bits (AMD SEV-SNP ABI, "GUEST_POLICY"). */
const POLICY_FLAGS: Array<[bit: number, name: string]> = [
  [16, 'SMT allowed'],
  [17, 'reserved (must be 1)'],
  [18, 'migration agent allowed'],
  [19, 'debugging allowed'],
  [20, 'single socket only'],
  [21, 'CXL allowed'],
  [22, 'AES-256-XTS required'],
  [23, 'RAPL disabled'],
  [24, 'ciphertext hiding required'],
  [25, 'page swap disabled'],
];

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function decodePolicy(policy: bigint): { abi: string; flags: string[] } {
  const abi = `${Number((policy >> 8n) & 0xffn)}.${Number(policy & 0xffn)}`;
  const flags = POLICY_FLAGS.filter(([bit]) => ((policy >> BigInt(bit)) & 1n) === 1n).map(([, name]) => name);
  return { abi, flags };
}

/** TCB_VERSION as laid out on Milan and Genoa (report versions 2 and 3). */
export function decodeTcb(tcb: bigint): string {
  const byte = (i: number) => Number((tcb >> BigInt(8 * i)) & 0xffn);
  return `bootloader=${byte(0)} tee=${byte(1)} snp=${byte(6)} microcode=${byte(7)} (raw 0x${tcb.toString(16).padStart(16, '0')})`;
}

/** Accepts the raw 1184 bytes, or the same as base64 or hex text. */
export function reportBytesFrom(input: Buffer): Uint8Array {
  if (input.length === SNP_REPORT_BYTES) return input;
  const text = input.toString('utf8').trim();
  if (/^[0-9a-fA-F]+$/.test(text) && text.length === SNP_REPORT_BYTES * 2) return Buffer.from(text, 'hex');
  const b64 = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  if (b64.length === SNP_REPORT_BYTES) return b64;
  throw new RangeError(`expected an SEV-SNP report: ${SNP_REPORT_BYTES} raw bytes, or that as hex or base64 (got ${input.length} bytes)`);
}

export function describeReport(r: SnpReport): string[] {
  const policy = decodePolicy(r.policy);
  return [
    `version          ${r.version}`,
    `guest_svn        ${r.guestSvn}`,
    `policy           0x${r.policy.toString(16)} (ABI ≥ ${policy.abi}; ${policy.flags.join(', ') || 'no flags'})`,
    `vmpl             ${r.vmpl}`,
    `signature_algo   ${r.signatureAlgo}${r.signatureAlgo === 1 ? ' (ECDSA P-384 with SHA-384)' : ''}`,
    `current_tcb      ${decodeTcb(r.currentTcb)}`,
    `reported_tcb     ${decodeTcb(r.reportedTcb)}`,
    `platform_info    0x${r.platformInfo.toString(16)}`,
    `flags            0x${r.flags.toString(16)} (author_key_en=${r.flags & 1}, mask_chip_key=${(r.flags >> 1) & 1}, signing_key=${(r.flags >> 2) & 7})`,
    `measurement      ${hex(r.measurement)}`,
    `report_data      ${hex(r.reportData)}`,
    `host_data        ${hex(r.hostData)}`,
    `family_id        ${hex(r.familyId)}`,
    `image_id         ${hex(r.imageId)}`,
    `id_key_digest    ${hex(r.idKeyDigest)}`,
    `author_key_digest ${hex(r.authorKeyDigest)}`,
    `report_id        ${hex(r.reportId)}`,
    `chip_id          ${hex(r.chipId)}`,
  ];
}

export function inspectReport(input: Buffer): string[] {
  return describeReport(parseSnpReport(reportBytesFrom(input)));
}

/** Tokens from attestation servers are a few KiB; a larger input is refused before any decoding. */
export const MAX_TOKEN_CHARS = 256 * 1024;
/** Bignums up to this many bytes are shown as numbers; longer ones as hex (a decimal of 90 KiB costs seconds of CPU). */
const MAX_BIGNUM_BYTES = 64;

// cbor-x's own bignum decoding takes quadratic time in the length: these take linear time.
const bignum = (bytes: Uint8Array, sign: 1 | -1) => {
  const digits = hex(bytes);
  if (bytes.length > MAX_BIGNUM_BYTES) return `${sign < 0 ? '-1 - ' : ''}0x${digits} (bignum, ${bytes.length} bytes)`;
  const n = BigInt(`0x${digits || '0'}`);
  return sign < 0 ? -1n - n : n;
};
// Registered with cbor-x for the process (its extensions are global); only the operator tools load this module.
for (const [tag, sign] of [
  [2, 1],
  [3, -1],
] as const)
  addExtension({ tag, decode: (b: Uint8Array) => bignum(b, sign) } as Parameters<typeof addExtension>[0]);

const CWT_CLAIMS: Record<number, string> = { 1: 'iss', 2: 'sub', 3: 'aud', 4: 'exp', 5: 'nbf', 6: 'iat', 7: 'cti' };
const TIME_CLAIMS = new Set(['exp', 'nbf', 'iat']);

function withTimes(claims: Record<string, unknown>, now: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) {
    if (TIME_CLAIMS.has(k) && typeof v === 'number') {
      const rel = k === 'exp' ? (v * 1000 < now ? ' (expired)' : ' (valid)') : '';
      out[k] = `${v} = ${new Date(v * 1000).toISOString()}${rel}`;
    } else {
      out[k] = v;
    }
  }
  return out;
}

export interface TokenDescription {
  readonly kind: 'JWT' | 'CWT';
  readonly header: unknown;
  readonly claims: unknown;
  readonly signatureBytes: number;
}

/** Decodes a JWT or a CWT (COSE_Sign1, hex or base64) without verifying anything. */
export function inspectToken(token: string, now = Date.now()): TokenDescription {
  const t = token.trim();
  if (t.length > MAX_TOKEN_CHARS)
    throw new RangeError(`the token is ${t.length} characters; tokens over ${MAX_TOKEN_CHARS} are not decoded`);
  const parts = t.split('.');
  if (parts.length === 3) {
    const json = (s: string, what: string) => {
      try {
        return JSON.parse(Buffer.from(decodeUrl(s.replace(/=+$/, ''))).toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new RangeError(`JWT ${what} is not base64url JSON: ${(err as Error).message}`);
      }
    };
    return {
      kind: 'JWT',
      header: json(parts[0] ?? '', 'header'),
      claims: withTimes(json(parts[1] ?? '', 'claims'), now),
      signatureBytes: Buffer.from(parts[2] ?? '', 'base64url').length,
    };
  }
  const bytes =
    /^[0-9a-fA-F]+$/.test(t) && t.length % 2 === 0
      ? Buffer.from(t, 'hex')
      : Buffer.from(t, t.includes('-') || t.includes('_') ? 'base64url' : 'base64');
  let value: unknown = decodeCbor(bytes);
  while (value instanceof Tag && (value.tag === 61 || value.tag === 18)) value = value.value; // CWT, COSE_Sign1
  if (!Array.isArray(value) || value.length !== 4) throw new RangeError('not a JWT (three dot-separated parts) nor a COSE_Sign1 CWT');
  const [protectedBytes, unprotected, payload, signature] = value as [Uint8Array, unknown, Uint8Array, Uint8Array];
  const header = protectedBytes.length > 0 ? decodeCbor(protectedBytes) : {};
  const rawClaims = decodeCbor(payload) as Map<unknown, unknown> | Record<string, unknown>;
  const entries = rawClaims instanceof Map ? [...rawClaims.entries()] : Object.entries(rawClaims);
  const claims: Record<string, unknown> = {};
  for (const [k, v] of entries) claims[CWT_CLAIMS[Number(k)] ?? String(k)] = v instanceof Uint8Array ? hex(v) : v;
  return { kind: 'CWT', header: { protected: header, unprotected }, claims: withTimes(claims, now), signatureBytes: signature.length };
}
