/**
 * How many sessions (boots) one guest may start: a token bucket. A boot is
 * one session, so a guest that reboots never meets the defaults; a guest
 * that floods NegotiationRequests or garbage waits for its budget, with its
 * link unread, and so pays for its flood in its own time.
 */
export interface SessionBudgetOptions {
  /** Sessions a guest may start per minute, sustained. */
  readonly perMinute: number;
  /** Sessions a guest may start at once before pacing begins. */
  readonly burst: number;
}

export class SessionBudget {
  private tokens: number;
  private at: number;

  constructor(
    private readonly options: SessionBudgetOptions,
    now = performance.now(),
  ) {
    this.tokens = options.burst;
    this.at = now;
  }

  /** 0 when a session may start now (and counts it); otherwise the milliseconds until one may. */
  take(now = performance.now()): number {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * 60_000) / this.options.perMinute));
  }

  /** True when the budget is whole again: forgetting it changes nothing. */
  full(now = performance.now()): boolean {
    this.refill(now);
    return this.tokens >= this.options.burst;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.options.burst, this.tokens + ((now - this.at) * this.options.perMinute) / 60_000);
    this.at = now;
  }
}
