import { InvalidReportError } from './errors.js';

/** SEV-SNP ATTESTATION_REPORT layout (PROTOCOL.md §7; AMD SEV-SNP ABI, Table "ATTESTATION_REPORT"). */
export const SNP_REPORT_BYTES = 0x4a0; // 1184
export const SNP_MEASUREMENT_BYTES = 48;
export const SNP_REPORT_DATA_BYTES = 64;

const OFF = {
  version: 0x000,
  guestSvn: 0x004,
  policy: 0x008,
  familyId: 0x010,
  imageId: 0x020,
  vmpl: 0x030,
  signatureAlgo: 0x034,
  currentTcb: 0x038,
  platformInfo: 0x040,
  flags: 0x048,
  reportData: 0x050,
  measurement: 0x090,
  hostData: 0x0c0,
  idKeyDigest: 0x0e0,
  authorKeyDigest: 0x110,
  reportId: 0x140,
  reportIdMa: 0x160,
  reportedTcb: 0x180,
  chipId: 0x1a0,
  signature: 0x2a0,
} as const;

export interface SnpReport {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: bigint;
  readonly platformInfo: bigint;
  readonly flags: number;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: bigint;
  readonly chipId: Uint8Array;
  /** r and s, 72 bytes each, little-endian, as in the report. */
  readonly signatureR: Uint8Array;
  readonly signatureS: Uint8Array;
}

export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (bytes.length !== SNP_REPORT_BYTES) {
    throw new InvalidReportError(`an SEV-SNP report is ${SNP_REPORT_BYTES} bytes, got ${bytes.length}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (o: number) => v.getUint32(o, true);
  const u64 = (o: number) => v.getBigUint64(o, true);
  const raw = (o: number, n: number) => bytes.slice(o, o + n);
  return {
    version: u32(OFF.version),
    guestSvn: u32(OFF.guestSvn),
    policy: u64(OFF.policy),
    familyId: raw(OFF.familyId, 16),
    imageId: raw(OFF.imageId, 16),
    vmpl: u32(OFF.vmpl),
    signatureAlgo: u32(OFF.signatureAlgo),
    currentTcb: u64(OFF.currentTcb),
    platformInfo: u64(OFF.platformInfo),
    flags: u32(OFF.flags),
    reportData: raw(OFF.reportData, SNP_REPORT_DATA_BYTES),
    measurement: raw(OFF.measurement, SNP_MEASUREMENT_BYTES),
    hostData: raw(OFF.hostData, 32),
    idKeyDigest: raw(OFF.idKeyDigest, 48),
    authorKeyDigest: raw(OFF.authorKeyDigest, 48),
    reportId: raw(OFF.reportId, 32),
    reportIdMa: raw(OFF.reportIdMa, 32),
    reportedTcb: u64(OFF.reportedTcb),
    chipId: raw(OFF.chipId, 64),
    signatureR: raw(OFF.signature, 72),
    signatureS: raw(OFF.signature + 72, 72),
  };
}

export interface SyntheticReportOptions {
  readonly measurement: Uint8Array;
  readonly reportData: Uint8Array;
  readonly version?: number;
  readonly policy?: bigint;
  readonly vmpl?: number;
  readonly hostData?: Uint8Array;
  readonly chipId?: Uint8Array;
}

/**
 * An unsigned report with the given measurement and REPORT_DATA, for tests
 * and the guest simulator. The signature is zero: nothing here pretends to
 * be AMD firmware.
 */
export function buildSyntheticReport(o: SyntheticReportOptions): Uint8Array {
  if (o.measurement.length !== SNP_MEASUREMENT_BYTES) {
    throw new InvalidReportError(`measurement must be ${SNP_MEASUREMENT_BYTES} bytes, got ${o.measurement.length}`);
  }
  if (o.reportData.length !== SNP_REPORT_DATA_BYTES) {
    throw new InvalidReportError(`report_data must be ${SNP_REPORT_DATA_BYTES} bytes, got ${o.reportData.length}`);
  }
  const bytes = new Uint8Array(SNP_REPORT_BYTES);
  const v = new DataView(bytes.buffer);
  v.setUint32(OFF.version, o.version ?? 3, true);
  // Default policy: SMT allowed (bit 16) and the must-be-one bit 17.
  v.setBigUint64(OFF.policy, o.policy ?? 0x30000n, true);
  v.setUint32(OFF.vmpl, o.vmpl ?? 0, true);
  v.setUint32(OFF.signatureAlgo, 1, true);
  bytes.set(o.reportData, OFF.reportData);
  bytes.set(o.measurement, OFF.measurement);
  if (o.hostData) bytes.set(o.hostData.subarray(0, 32), OFF.hostData);
  if (o.chipId) bytes.set(o.chipId.subarray(0, 64), OFF.chipId);
  return bytes;
}
