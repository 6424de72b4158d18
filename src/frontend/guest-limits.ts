import type { GuestPeer } from './transport.js';

export interface GuestLimitOptions {
  /** Connections one guest CID may hold at once (a guest needs one, two across a reboot). */
  readonly maxPerCid: number;
  /** vsock connections from all guests together. */
  readonly maxTotal: number;
  /** Sessions (boots) one guest CID may start per minute. */
  readonly sessionsPerMinute: number;
  /** CIDs exempt from the per-CID limits: the host's own loopback (1) carries host processes. */
  readonly trustedCids: ReadonlySet<number>;
}

export type RefusalReason = 'per_cid' | 'total' | 'session_rate';

export interface Refusal {
  readonly reason: RefusalReason;
  readonly cid: number | undefined;
  /** First refusal of a burst (log it); later ones in the burst are only counted. */
  readonly firstOfBurst: boolean;
}

/** A burst ends after this long without a refusal for the same CID and reason. */
const BURST_GAP_MS = 10_000;

/**
 * Admission for vsock guests. A Unix socket is reachable only by QEMU; every
 * VM on the host, tenants' guest operating systems included, can reach the
 * vsock port. So one guest must not be able to starve the others of
 * connections or of the attestation server. Unix peers are not limited.
 */
export class GuestLimits {
  private readonly perCid = new Map<number, number>();
  private total = 0;
  private readonly sessions = new Map<number, number[]>();
  private readonly lastRefusal = new Map<string, number>();

  constructor(private readonly options: GuestLimitOptions) {}

  /** Counts the connection in, or says why not. Call `release` when an admitted one closes. */
  admit(peer: GuestPeer, now = performance.now()): Refusal | undefined {
    if (peer.transport !== 'vsock') return undefined;
    if (this.total >= this.options.maxTotal) return this.refuse('total', peer.cid, now);
    const cid = peer.cid;
    if (cid !== undefined && !this.options.trustedCids.has(cid) && (this.perCid.get(cid) ?? 0) >= this.options.maxPerCid) {
      return this.refuse('per_cid', cid, now);
    }
    this.total++;
    if (cid !== undefined) this.perCid.set(cid, (this.perCid.get(cid) ?? 0) + 1);
    return undefined;
  }

  release(peer: GuestPeer): void {
    if (peer.transport !== 'vsock') return;
    this.total--;
    const cid = peer.cid;
    if (cid === undefined) return;
    const n = (this.perCid.get(cid) ?? 1) - 1;
    if (n <= 0) this.perCid.delete(cid);
    else this.perCid.set(cid, n);
  }

  /** A guest starts a session (boot); refused past the per-minute budget. */
  startSession(peer: GuestPeer, now = performance.now()): Refusal | undefined {
    const cid = peer.cid;
    if (peer.transport !== 'vsock' || cid === undefined || this.options.trustedCids.has(cid)) return undefined;
    const recent = (this.sessions.get(cid) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= this.options.sessionsPerMinute) {
      this.sessions.set(cid, recent);
      return this.refuse('session_rate', cid, now);
    }
    recent.push(now);
    this.sessions.set(cid, recent);
    return undefined;
  }

  /** Forgets the session history of CIDs that have no connection left (keeps the maps bounded). */
  forgetIdle(now = performance.now()): void {
    for (const [cid, times] of this.sessions) {
      if (!this.perCid.has(cid) && times.every((t) => now - t >= 60_000)) this.sessions.delete(cid);
    }
    for (const [key, t] of this.lastRefusal) if (now - t >= BURST_GAP_MS) this.lastRefusal.delete(key);
  }

  private refuse(reason: RefusalReason, cid: number | undefined, now: number): Refusal {
    const key = `${reason}:${cid ?? '-'}`;
    const last = this.lastRefusal.get(key);
    this.lastRefusal.set(key, now);
    return { reason, cid, firstOfBurst: last === undefined || now - last >= BURST_GAP_MS };
  }
}
