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

/** What one guest (a VM) owns against abuse: its session budget, its log bursts, and the server work its closed links left running. */
export interface GuestAccount {
  readonly budget: SessionBudget;
  readonly logs: LogBursts;
  /** Backend work of links that closed mid-exchange, until it settles or its deadline passes. */
  readonly orphans: Set<Promise<void>>;
}

/** Whose account a connection uses: a vsock CID, or a Unix listener (its link's key). */
type AccountKey = number | object;

/**
 * Admission and budgets for guests. Every VM on the host, tenants' guest
 * operating systems included, can write to its serial port and reach the
 * vsock port, so one guest must not be able to starve the others of
 * connections, of the attestation server or of the log.
 *
 * The budget belongs to the VM, not the connection, so a guest that drops
 * its link and reconnects (QEMU's `reconnect-ms`) keeps its budget, its log
 * bursts and its server exchange in flight: a VM is a CID for vsock, and its
 * listener for Unix (QEMU gives each VM its own socket). The host's trusted
 * CIDs get an account per connection: they carry host processes.
 */
export class GuestLimits {
  private readonly perCid = new Map<number, number>();
  /** vsock connections. */
  private total = 0;
  /** Connections of every transport. */
  private all = 0;
  private readonly accounts = new Map<AccountKey, { account: GuestAccount; links: number }>();
  private readonly lastRefusal = new Map<string, number>();

  constructor(
    private readonly options: GuestLimitOptions,
    /** Guest connections of every transport together: what the process's open files allow beside a reserve. */
    private readonly maxConnections = Number.POSITIVE_INFINITY,
  ) {}

  /** Counts the connection in, or says why not. Call `release` when an admitted one closes. */
  admit(peer: GuestPeer, now = performance.now()): Refusal | undefined {
    if (this.all >= this.maxConnections) return this.refuse('open_files', peer.cid, now);
    if (peer.transport === 'vsock') {
      // Fail closed: a peer the kernel cannot name is no guest we can count, and no trusted loopback either.
      if (peer.cid === undefined) return this.refuse('no_cid', undefined, now);
      if (this.total >= this.options.maxTotal) return this.refuse('total', peer.cid, now);
      const cid = peer.cid;
      if (this.sharedCid(peer) && (this.perCid.get(cid) ?? 0) >= this.options.maxPerCid) {
        return this.refuse('per_cid', cid, now);
      }
      this.total++;
      this.perCid.set(cid, (this.perCid.get(cid) ?? 0) + 1);
    }
    this.all++;
    return undefined;
  }

  /**
   * The account of the VM behind a connection, held until `release`: a vsock
   * CID's, or for Unix the account of `link` (the listener the link came to).
   * Call `leave` when the connection closes.
   */
  account(peer: GuestPeer, link: object, log: WarnLogger): GuestAccount {
    const key = this.keyOf(peer, link);
    let held = key === undefined ? undefined : this.accounts.get(key);
    if (held === undefined) {
      const budget = new SessionBudget({ perMinute: this.options.sessionsPerMinute, burst: this.options.sessionBurst });
      held = { account: { budget, logs: new LogBursts(log), orphans: new Set() }, links: 0 };
      if (key !== undefined) this.accounts.set(key, held);
    }
    held.links++;
    return held.account;
  }

  /** A link let go of its VM's account; an account of its own summarises its open log bursts. */
  leave(peer: GuestPeer, link: object, account: GuestAccount): void {
    const key = this.keyOf(peer, link);
    const held = key === undefined ? undefined : this.accounts.get(key);
    if (held === undefined) account.logs.flush();
    else held.links--;
  }

  /** An admitted connection closed. */
  release(peer: GuestPeer): void {
    this.all--;
    if (peer.transport !== 'vsock') return;
    this.total--;
    const cid = peer.cid;
    if (cid === undefined) return;
    const n = (this.perCid.get(cid) ?? 1) - 1;
    if (n <= 0) this.perCid.delete(cid);
    else this.perCid.set(cid, n);
  }

  /** Forgets the accounts of VMs without a link that no longer matter: budget whole, no burst open, no work left (keeps the map bounded by live guests). */
  forgetIdle(now = performance.now()): void {
    for (const [key, held] of this.accounts) {
      if (held.links > 0 || held.account.orphans.size > 0 || held.account.logs.open) continue;
      if (held.account.budget.full(now)) {
        held.account.logs.flush();
        this.accounts.delete(key);
      }
    }
    for (const [key, t] of this.lastRefusal) if (now - t >= LOG_BURST_GAP_MS) this.lastRefusal.delete(key);
  }

  private keyOf(peer: GuestPeer, link: object): AccountKey | undefined {
    if (peer.transport !== 'vsock') return link;
    return this.sharedCid(peer) ? (peer.cid as number) : undefined;
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
