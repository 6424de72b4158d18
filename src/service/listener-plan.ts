import type { NormalizedConfig, NormalizedListener } from './config/normalize.js';

/** A listener as planned, before anything is bound: its normalized config and which backend it shares. Pure data. */
export interface PlannedListener extends NormalizedListener {
  /** Listeners with equal backend keys share one backend (and so one HTTP pool). */
  readonly backendKey: string;
}

/** What a reload changes: listeners to bind, to close, and to give a new profile (same address). */
export interface PlanDiff {
  readonly added: readonly PlannedListener[];
  readonly removed: readonly PlannedListener[];
  readonly changed: readonly PlannedListener[];
}

/** The listeners a normalized config asks for, each with the key of the backend it shares. */
export function planListeners(config: NormalizedConfig): PlannedListener[] {
  return config.listeners.map((l) => ({
    ...l,
    backendKey: `${typeof l.protocol === 'string' ? l.protocol : `definition:${l.protocol.name}`} ${stableJson(l.backendOptions)}`,
  }));
}

/** Two plans compared by address: what a reload binds, closes, and re-configures. */
export function diffPlans(before: readonly PlannedListener[], after: readonly PlannedListener[]): PlanDiff {
  const old = new Map(before.map((p) => [p.key, p]));
  const wanted = new Set(after.map((p) => p.key));
  return {
    added: after.filter((p) => !old.has(p.key)),
    removed: before.filter((p) => !wanted.has(p.key)),
    changed: after.filter((p) => {
      const was = old.get(p.key);
      return was !== undefined && stableJson(was) !== stableJson(p);
    }),
  };
}

/** JSON with sorted keys, so equal plans compare equal. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Set)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : typeof v === 'function'
        ? `function:${(v as { name?: string }).name ?? ''}`
        : v,
  );
}
