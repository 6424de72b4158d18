/** The part of a logger that a burst summary needs. */
export interface WarnLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** A burst ends after this long without another event of the same kind. */
export const LOG_BURST_GAP_MS = 10_000;

interface Burst {
  last: number;
  suppressed: number;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/**
 * Warnings that one guest can cause at will (failed sessions, pacing,
 * answers it does not take) are logged once per burst: the first is
 * written, later ones of the same kind are counted, and one summary line
 * with the count follows when the burst ends. So a flood costs a guest's
 * neighbours two log lines, not one per frame. Keys are the kind of event
 * (a reason code), a small fixed set.
 */
export class LogBursts {
  private readonly bursts = new Map<string, Burst>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: WarnLogger,
    private readonly gapMs = LOG_BURST_GAP_MS,
  ) {}

  /** Writes the warning if it starts a burst of `key`; otherwise counts it. */
  warn(key: string, fields: Record<string, unknown>, message: string, now = performance.now()): void {
    const b = this.bursts.get(key);
    if (b !== undefined && now - b.last < this.gapMs) {
      b.last = now;
      b.suppressed++;
      this.arm();
      return;
    }
    if (b !== undefined) this.summarise(key, b);
    this.bursts.set(key, { last: now, suppressed: 0, message, fields });
    this.log.warn(fields, message);
    this.arm();
  }

  /** True while a burst is open: forgetting these bursts would let the next event be logged at once. */
  get open(): boolean {
    return this.bursts.size > 0;
  }

  /** Summarises every burst still open (the link closes). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, b] of this.bursts) this.summarise(key, b);
    this.bursts.clear();
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.expire(), this.gapMs);
    this.timer.unref();
  }

  private expire(now = performance.now()): void {
    this.timer = undefined;
    for (const [key, b] of this.bursts) {
      if (now - b.last < this.gapMs) continue;
      this.summarise(key, b);
      this.bursts.delete(key);
    }
    if (this.bursts.size > 0) this.arm();
  }

  private summarise(key: string, b: Burst): void {
    if (b.suppressed === 0) return;
    this.log.warn(
      { ...b.fields, repeated: b.suppressed, kind: key },
      `${b.message} (and ${b.suppressed} more like it, counted but not logged)`,
    );
    b.suppressed = 0;
  }
}
