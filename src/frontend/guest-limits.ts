import type { RefusalReason } from '../protocol/errors.js';
import { LOG_BURST_GAP_MS, LogBursts, type WarnLogger } from './log-bursts.js';
import { SessionBudget } from './session-budget.js';
import type { GuestPeer } from './transport.js';

export interface GuestLimitOptions {
  /** Connections one guest CID may hold at once (a guest needs one, two across a reboot). */
  readonly maxPerCid: number;
  /** vsock connections from all guests together. */
  readonly maxTotal: number;
  /** Sessions (boots) one guest may start per minute, sustained, on any transport; past it the guest is paced. */
  readonly sessionsPerMinute: number;
  /** Sessions one guest may start at once before pacing begins. */
  readonly sessionBurst: number;
  /** CIDs exempt from the per-CID limits: the host's own loopback (1) carries host processes. */
  readonly trustedCids: ReadonlySet<number>;
}

export type { RefusalReason } from '../protocol/errors.js';

export interface Refusal {
  readonly reason: RefusalReason;
  readonly cid: number | undefined;
  /** First refusal of a burst (log it); later ones in the burst are only counted. */
  readonly firstOfBurst: boolean;
}

/** What one guest owns against abuse: its session budget and its log bursts. */
export interface GuestAccount {
  readonly budget: SessionBudget;
  readonly logs: LogBursts;
}

/**
 * Admission and budgets for guests. Every VM on the host, tenants' guest
 * operating systems included, can write to its serial port and reach the
 * vsock port, so one guest must not be able to starve the others of
 * connections, of the attestation server or of the log.
 *
 * A guest is a link for Unix (QEMU gives each VM its own socket) and a CID
 * for vsock, so reconnecting does not reset a vsock guest's budget. The
 * host's trusted CIDs get an account per connection, like Unix links.
 */
export class GuestLimits {
  private readonly perCid = new Map<number, number>();
  private total = 0;
  private readonly accounts = new Map<number, GuestAccount>();
  private readonly lastRefusal = new Map<string, number>();

  constructor(private readonly options: GuestLimitOptions) {}

  /** Counts the connection in, or says why not. Call `release` when an admitted one closes. */
  admit(peer: GuestPeer, now = performance.now()): Refusal | undefined {
    if (peer.transport !== 'vsock') return undefined;
    // Fail closed: a peer the kernel cannot name is no guest we can count, and no trusted loopback either.
    if (peer.cid === undefined) return this.refuse('no_cid', undefined, now);
    if (this.total >= this.options.maxTotal) return this.refuse('total', peer.cid, now);
    const cid = peer.cid;
    if (this.sharedCid(peer) && (this.perCid.get(cid as number) ?? 0) >= this.options.maxPerCid) {
      return this.refuse('per_cid', cid, now);
    }
    this.total++;
    if (cid !== undefined) this.perCid.set(cid, (this.perCid.get(cid) ?? 0) + 1);
    return undefined;
  }

  /** An admitted connection closed; its account, if it was the connection's own, summarises its open log bursts. */
  release(peer: GuestPeer, account?: GuestAccount): void {
    if (account !== undefined && !this.sharedCid(peer)) account.logs.flush();
    if (peer.transport !== 'vsock') return;
    this.total--;
    const cid = peer.cid;
    if (cid === undefined) return;
    const n = (this.perCid.get(cid) ?? 1) - 1;
    if (n <= 0) this.perCid.delete(cid);
    else this.perCid.set(cid, n);
  }

  /** The account of the guest behind `peer`: shared by a vsock CID's connections, else the link's own. */
  account(peer: GuestPeer, log: WarnLogger): GuestAccount {
    const budget = { perMinute: this.options.sessionsPerMinute, burst: this.options.sessionBurst };
    if (!this.sharedCid(peer)) return { budget: new SessionBudget(budget), logs: new LogBursts(log) };
    const cid = peer.cid as number;
    let a = this.accounts.get(cid);
    if (a === undefined) {
      a = { budget: new SessionBudget(budget), logs: new LogBursts(log) };
      this.accounts.set(cid, a);
    }
    return a;
  }

  /** Forgets what CIDs without a connection no longer need (keeps the maps bounded by live guests). */
  forgetIdle(now = performance.now()): void {
    for (const [cid, a] of this.accounts) {
      if (this.perCid.has(cid)) continue;
      if (a.budget.full(now)) {
        a.logs.flush();
        this.accounts.delete(cid);
      }
    }
    for (const [key, t] of this.lastRefusal) if (now - t >= LOG_BURST_GAP_MS) this.lastRefusal.delete(key);
  }

  private sharedCid(peer: GuestPeer): boolean {
    return peer.transport === 'vsock' && peer.cid !== undefined && !this.options.trustedCids.has(peer.cid);
  }

  private refuse(reason: RefusalReason, cid: number | undefined, now: number): Refusal {
    const key = `${reason}:${cid ?? '-'}`;
    const last = this.lastRefusal.get(key);
    this.lastRefusal.set(key, now);
    return { reason, cid, firstOfBurst: last === undefined || now - last >= LOG_BURST_GAP_MS };
  }
}
