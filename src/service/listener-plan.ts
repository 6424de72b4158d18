import { LISTENER_NAME, type RawBackendOptions } from '../backends/contract.js';
import type { AnyBackendDefinition } from '../backends/registry.js';
import { ConfigError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_PHASE_TIMEOUT_MS } from './config.js';
import type { ListenerConfig, ProxyConfig } from './proxy-config.js';

/** A listener as planned from the configuration, before anything is bound. Pure data. */
export interface PlannedListener {
  /** What identifies it across reloads: its address (`unix:PATH`, `vsock:PORT`, `fd:N`). */
  readonly key: string;
  readonly name: string;
  readonly config: ListenerConfig;
  /** Listeners with equal backend keys share one backend (and so one HTTP pool). */
  readonly backendKey: string;
  readonly protocol: string | AnyBackendDefinition;
  readonly backendOptions: RawBackendOptions;
  readonly settings: { readonly maxFrameBytes: number; readonly frameTimeoutMs: number; readonly phaseTimeoutMs: number };
}

/** What a reload changes: listeners to bind, to close, and to give new settings (same address). */
export interface PlanDiff {
  readonly added: readonly PlannedListener[];
  readonly removed: readonly PlannedListener[];
  readonly changed: readonly PlannedListener[];
}

type ListenerSource = Pick<
  ProxyConfig,
  | 'protocol'
  | 'unix'
  | 'vsock'
  | 'listenFds'
  | 'listeners'
  | 'force'
  | 'socketMode'
  | 'socketGid'
  | 'backendOptions'
  | 'maxFrameBytes'
  | 'frameTimeoutMs'
  | 'phaseTimeoutMs'
>;

/** The listeners a configuration asks for, with their effective settings; checks names and addresses. */
export function planListeners(config: ListenerSource): PlannedListener[] {
  const list = (v: string | number | readonly (string | number)[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  // The proxy-wide socket settings apply to every Unix listener that does not set its own.
  const shared = definedOnly({ force: config.force, socketMode: config.socketMode, socketGid: config.socketGid });
  const configs: ListenerConfig[] = [
    ...(config.listenFds ?? []).map((fd) => ({ fd })),
    ...list(config.unix).map((unix) => ({ unix: String(unix), ...shared })),
    ...list(config.vsock).map((vsock) => ({ vsock: Number(vsock) })),
    ...(config.listeners ?? []).map((l) => (l.unix === undefined ? l : { ...shared, ...definedOnly(l) })),
  ];
  if (configs.length === 0) throw new ConfigError('no listener: give unix PATH, vsock [PORT], a `listeners` list, or sockets from systemd');
  const keys = new Set<string>();
  const names = new Set<string>();
  return configs.map((c) => {
    const addresses = [c.unix, c.vsock, c.fd].filter((a) => a !== undefined);
    if (addresses.length !== 1) throw new ConfigError(`a listener needs exactly one of unix, vsock or fd (got ${JSON.stringify(c)})`);
    const key = c.unix !== undefined ? `unix:${c.unix}` : c.vsock !== undefined ? `vsock:${c.vsock}` : `fd:${c.fd}`;
    const name = c.name ?? (c.unix !== undefined ? c.unix : key);
    if (c.name !== undefined && !LISTENER_NAME.test(c.name)) {
      throw new ConfigError(
        `listener name ${JSON.stringify(c.name)}: use 1 to 64 letters, digits, ".", "_" or "-" (it goes into metrics and resource paths)`,
      );
    }
    if (keys.has(key)) throw new ConfigError(`two listeners on ${key}`);
    if (names.has(name)) throw new ConfigError(`two listeners named ${JSON.stringify(name)}`);
    keys.add(key);
    names.add(name);
    const protocol = c.protocol ?? config.protocol;
    const backendOptions = { ...config.backendOptions, ...c.backendOptions };
    return {
      key,
      name,
      config: c,
      protocol,
      backendOptions,
      backendKey: `${typeof protocol === 'string' ? protocol : `definition:${protocol.name}`} ${stableJson(backendOptions)}`,
      settings: {
        maxFrameBytes: c.maxFrameBytes ?? config.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        frameTimeoutMs: c.frameTimeoutMs ?? config.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS,
        phaseTimeoutMs: c.phaseTimeoutMs ?? config.phaseTimeoutMs ?? DEFAULT_PHASE_TIMEOUT_MS,
      },
    };
  });
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

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** JSON with sorted keys, so equal settings compare equal. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Set)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : typeof v === 'function'
        ? `function:${(v as { name?: string }).name ?? ''}`
        : v,
  );
}
