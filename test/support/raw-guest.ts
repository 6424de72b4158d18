import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { FrameReader } from '../../src/frontend/frame-reader.js';
import { connectVsock } from '../../src/frontend/vsock-native.js';
import {
  buildSyntheticReport,
  encodeFrame,
  generateP521KeyPair,
  parseNegotiationResponse,
  reportDataDigest,
  serializeAttestationRequest,
} from '../../src/protocol/index.js';
import type { EcPublicKey } from '../../src/protocol/messages.js';
import type { ProxyAddress } from '../../src/testkit/guest-simulator.js';

/** A guest that sends whatever bytes a test wants and reads whatever comes back. */
export class RawGuest {
  private readonly reader: FrameReader;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.reader = new FrameReader(socket, { maxFrameBytes: 1 << 20, frameTimeoutMs: 60_000 });
    // Resolves on close whatever preceded it (a reset from the proxy included).
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(address: ProxyAddress): Promise<RawGuest> {
    if (typeof address !== 'string') return new RawGuest(connectVsock(address.cid, address.port));
    const s = connect(address);
    await once(s, 'connect');
    return new RawGuest(s);
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  send(json: string): void {
    this.socket.write(encodeFrame(json));
  }

  /** The next frame from the proxy, or null once it closed the connection. */
  async next(): Promise<string | null> {
    try {
      const f = await this.reader.next();
      return f === null ? null : f.toString('utf8');
    } catch {
      return null;
    }
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** One connection attempt: true if something accepted it (the proxy's own probe). */
export { isListening as tryConnect } from '../../src/frontend/socket-path.js';

/** The NegotiationRequest SVSM sends, and the one failure answer, as JSON text. */
export const NEGOTIATE = '{"version":[0,1,0],"tee":"snp"}';
export const FAILURE = '{"success":false,"decryption":null,"token":null}';

/** A raw guest on `address`, destroyed when the test ends. */
export async function rawGuestFor(address: ProxyAddress, t: TestContext): Promise<RawGuest> {
  const g = await RawGuest.connect(address);
  t.after(() => g.destroy());
  return g;
}

/** A valid AttestationRequest for the negotiated challenge (a fresh P-521 key, a synthetic report), optionally spoiled. */
export function attestationFor(
  measurement: Uint8Array,
  negotiation: string,
  spoil: (json: Record<string, unknown>) => void = () => undefined,
  key: EcPublicKey = generateP521KeyPair().publicKey,
): string {
  const neg = parseNegotiationResponse(negotiation);
  const report = buildSyntheticReport({ measurement, reportData: reportDataDigest(neg.params, neg.challenge, key) });
  const json = JSON.parse(
    serializeAttestationRequest({
      tee: 'snp',
      evidence: { tag: 'Snp', value: { report, certs_buf: undefined } },
      challenge: neg.challenge,
      key,
    }),
  ) as Record<string, unknown>;
  spoil(json);
  return JSON.stringify(json);
}
