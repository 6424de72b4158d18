import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { FrameReader } from '../frontend/frame-reader.js';
import { connectVsock } from '../frontend/vsock-native.js';
import {
  buildSyntheticReport,
  decryptSecret,
  describeError,
  encodeFrame,
  FAILURE_ANSWER,
  generateP521KeyPair,
  PROTOCOL_VERSION,
  parseAttestationResponse,
  parseNegotiationResponse,
  reportDataDigest,
  serializeAttestationRequest,
  serializeNegotiationRequest,
} from '../protocol/index.js';

/** Where the proxy is: a Unix socket path (QEMU's serial chardev), or a vsock address. */
export type ProxyAddress = string | { readonly cid: number; readonly port: number };

export interface BootOptions {
  /** The launch measurement to put in the synthetic report (48 bytes). */
  readonly measurement: Uint8Array;
  /** When given, the decrypted secret is compared with it. */
  readonly expectSecret?: Uint8Array;
  /** HOST_DATA to put in the report (32 bytes), as QEMU's sev-snp-guest host-data= sets it. */
  readonly hostData?: Uint8Array;
  /** Narrates each step (for the demo). */
  readonly onStep?: (line: string) => void;
  /** How long to wait for each answer before reporting a timeout. Default 30 s. */
  readonly answerTimeoutMs?: number;
}

export interface BootResult {
  /** The proxy answered success:true and the secret decrypted (and matched, if expected). */
  readonly ok: boolean;
  /** What the proxy said: true/false, or undefined if it never answered. */
  readonly attested?: boolean;
  readonly secret?: Uint8Array;
  readonly secretMatches?: boolean;
  readonly error?: string;
  readonly negotiateMs: number;
  readonly attestMs: number;
  readonly totalMs: number;
}

const MAX_FRAME = 1024 * 1024;
const hex = (b: Uint8Array, n = 16) => Buffer.from(b).toString('hex').slice(0, n);

/**
 * Does what SVSM does on COM3 at boot: a fresh P-521 key, negotiation,
 * REPORT_DATA = SHA-512 over the negotiated params, an attestation report
 * (synthetic, unsigned), the attestation request, and decryption of the
 * secret. One instance is one serial link; `boot()` may run many times on it.
 */
export class SimulatedGuest {
  private readonly reader: FrameReader;

  private constructor(private readonly socket: Socket) {
    this.reader = new FrameReader(socket, { maxFrameBytes: MAX_FRAME, frameTimeoutMs: 60_000 });
  }

  /** Connects as QEMU does for COM3 (a path), or as SVSM does over vsock (`{ cid, port }`). */
  static async connect(address: ProxyAddress): Promise<SimulatedGuest> {
    if (typeof address !== 'string') return new SimulatedGuest(connectVsock(address.cid, address.port));
    const socket = connect(address);
    await once(socket, 'connect');
    return new SimulatedGuest(socket);
  }

  async boot(o: BootOptions): Promise<BootResult> {
    const say = o.onStep ?? (() => undefined);
    const t0 = performance.now();
    let negotiateMs = 0;
    let t1 = t0;
    const done = (r: Omit<BootResult, 'negotiateMs' | 'attestMs' | 'totalMs'>): BootResult => ({
      ...r,
      negotiateMs,
      attestMs: negotiateMs === 0 ? 0 : performance.now() - t1,
      totalMs: performance.now() - t0,
    });
    try {
      const key = generateP521KeyPair();
      say(`guest: generated a P-521 key (x=${hex(key.publicKey.x)}…)`);
      this.socket.write(encodeFrame(serializeNegotiationRequest({ version: [...PROTOCOL_VERSION], tee: 'snp' })));
      say('guest: sent NegotiationRequest {version 0.1.0, tee snp}');
      const answerTimeoutMs = o.answerTimeoutMs ?? 30_000;
      const negFrame = await this.answer('NegotiationResponse', answerTimeoutMs);
      if (negFrame === null) return done({ ok: false, error: 'proxy closed the connection during negotiation' });
      if (negFrame.toString('utf8') === FAILURE_ANSWER) {
        say('guest: proxy answered the negotiation with the failure frame (SVSM would stop this boot here)');
        return done({ ok: false, attested: false, error: 'negotiation failed (the proxy sent the failure answer)' });
      }
      const neg = parseNegotiationResponse(negFrame);
      negotiateMs = performance.now() - t0;
      say(`guest: got a ${neg.challenge.length}-byte challenge (${hex(neg.challenge)}…), params [${neg.params.join(', ')}]`);

      t1 = performance.now();
      const reportData = reportDataDigest(neg.params, neg.challenge, key.publicKey);
      const report = buildSyntheticReport({ measurement: o.measurement, reportData, hostData: o.hostData });
      say(`guest: REPORT_DATA = SHA-512(params) = ${hex(reportData)}…, report carries measurement ${hex(o.measurement)}…`);
      this.socket.write(
        encodeFrame(
          serializeAttestationRequest({
            tee: 'snp',
            evidence: { tag: 'Snp', value: { report, certs_buf: undefined } },
            challenge: neg.challenge,
            key: key.publicKey,
          }),
        ),
      );
      say(`guest: sent AttestationRequest (${report.length}-byte SNP report)`);
      const attFrame = await this.answer('AttestationResponse', answerTimeoutMs);
      if (attFrame === null) return done({ ok: false, error: 'proxy closed the connection during attestation' });
      const resp = parseAttestationResponse(attFrame);
      if (!resp.success) {
        say('guest: proxy answered success:false (attestation refused)');
        return done({ ok: false, attested: false, error: 'attestation failed (success:false)' });
      }
      if (resp.decryption === undefined || resp.secret === undefined) {
        return done({ ok: false, attested: true, error: 'success:true without secret or decryption data' });
      }
      const secret = decryptSecret(key.secretKey, resp.decryption, resp.secret);
      const secretMatches = o.expectSecret === undefined ? undefined : Buffer.from(secret).equals(o.expectSecret);
      say(
        `guest: decrypted a ${secret.length}-byte secret${secretMatches === undefined ? '' : secretMatches ? ' — it matches the expected one' : ' — it does NOT match'}`,
      );
      return done({ ok: secretMatches !== false, attested: true, secret, secretMatches });
    } catch (err) {
      return done({ ok: false, error: describeError(err) });
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  /** The proxy's next frame, or a timeout error: SVSM would wait forever, a test or an operator should not. */
  private async answer(what: string, timeoutMs: number): Promise<Buffer | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.reader.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            // The link is unusable after a missed answer: a late one would be taken for the next boot's.
            this.socket.destroy();
            reject(new Error(`no ${what} from the proxy within ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface GuestFleetOptions {
  readonly address: ProxyAddress;
  readonly measurement: Uint8Array;
  readonly expectSecret?: Uint8Array;
  readonly hostData?: Uint8Array;
  /** Total boots. */
  readonly sessions: number;
  /** Serial links open at once; boots are spread over them. */
  readonly concurrency: number;
  /** Per answer; default 30 s. */
  readonly answerTimeoutMs?: number;
}

export interface GuestFleetSummary {
  readonly sessions: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errors: string[];
  readonly elapsedMs: number;
  readonly latencyMs: { p50: number; p95: number; p99: number; max: number };
}

/** Runs `sessions` boots over `concurrency` links at once and summarizes. */
export async function runGuestFleet(o: GuestFleetOptions): Promise<GuestFleetSummary> {
  const t0 = performance.now();
  const latencies: number[] = [];
  const errors: string[] = [];
  let succeeded = 0;
  let next = 0;
  const worker = async () => {
    let guest: SimulatedGuest | undefined;
    try {
      guest = await SimulatedGuest.connect(o.address);
      while (next < o.sessions) {
        next++;
        const r = await guest.boot({
          measurement: o.measurement,
          expectSecret: o.expectSecret,
          hostData: o.hostData,
          answerTimeoutMs: o.answerTimeoutMs,
        });
        latencies.push(r.totalMs);
        if (r.ok) succeeded++;
        else errors.push(r.error ?? 'secret mismatch');
        if (!r.ok && r.attested === undefined) break; // link is broken
      }
    } catch (err) {
      errors.push(describeError(err));
    } finally {
      guest?.close();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.sessions)) }, worker));
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return {
    sessions: o.sessions,
    succeeded,
    failed: o.sessions - succeeded,
    errors,
    elapsedMs: performance.now() - t0,
    latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: latencies.at(-1) ?? 0 },
  };
}
