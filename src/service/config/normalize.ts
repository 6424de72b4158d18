import { LISTENER_NAME, type RawBackendOptions } from '../../backends/contract.js';
import type { AnyBackendDefinition } from '../../backends/registry.js';
import type { GuestLimitOptions } from '../../frontend/guest-limits.js';
import { ConfigError } from '../../protocol/errors.js';
import type { Logger } from '../log.js';
import type { PassedSocket } from '../systemd.js';
import { TRUSTED_CIDS } from './defaults.js';
import { OPTION_NAMES, OPTIONS, type OptionSpec, type OptionTarget } from './options.js';
import type { ListenerConfig, ProxyConfig } from './types.js';

/** A Unix socket file's options. */
export interface SocketFileOptions {
  readonly force: boolean;
  readonly mode: number;
  readonly gid?: number;
}

/** A listener's address; a Unix socket file with its options. */
export type NormalizedAddress =
  | { readonly unix: string; readonly socket: SocketFileOptions; readonly vsock?: never; readonly fd?: never; readonly systemd?: never }
  | { readonly vsock: number; readonly unix?: never; readonly fd?: never; readonly systemd?: never }
  /** A passed socket, with its systemd name when it has one. */
  | { readonly fd: number; readonly systemd?: string; readonly unix?: never; readonly vsock?: never }
  /** A socket the config names but this process was not passed (`aproxy check`, or a unit that does not pass it). */
  | { readonly systemd: string; readonly fd?: never; readonly unix?: never; readonly vsock?: never };

/** One listener with everything it runs with: its own overrides over the proxy-wide values over the defaults. */
export interface NormalizedListener {
  /** What identifies it across reloads: its address (`unix:PATH`, `vsock:PORT`, `fd:N`; `systemd:NAME` when not passed). */
  readonly key: string;
  readonly name: string;
  readonly address: NormalizedAddress;
  readonly protocol: string | AnyBackendDefinition;
  readonly backendOptions: RawBackendOptions;
  readonly maxFrameBytes: number;
  readonly frameTimeoutMs: number;
  readonly phaseTimeoutMs: number;
}

/** A config with every default applied, once, and every listener spelled out. */
export interface NormalizedConfig {
  readonly listeners: readonly NormalizedListener[];
  readonly backendCallTimeoutMs: number;
  readonly guestLimits: GuestLimitOptions;
  readonly metrics?: string;
  readonly log: Logger;
}

/**
 * The one place a config gets its defaults (from the option table) and its
 * listeners their inherited values, and where the rules every listener
 * list must keep are checked: at least one listener, unique addresses and
 * names, valid names. Start-up, reload and `aproxy check` all go through it.
 */
export function normalizeConfig(config: ProxyConfig): NormalizedConfig {
  const list = <T>(v: T | readonly T[] | undefined): readonly T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v as T]);
  const passed = config.listenFds ?? [];
  const claimed = new Set((config.listeners ?? []).flatMap((l) => (l.systemd === undefined ? [] : [l.systemd])));
  const own: ListenerConfig[] = [
    // A passed socket no listener claims by name is served with the proxy-wide values, named after it.
    ...passed.filter((p) => p.name === undefined || !claimed.has(p.name)).map((p) => ({ fd: p.fd, name: passedName(p, passed) })),
    ...list(config.unix).map((unix) => ({ unix })),
    ...list(config.vsock).map((vsock) => ({ vsock })),
    ...(config.listeners ?? []),
  ];
  if (own.length === 0) throw new ConfigError('no listener: give unix PATH, vsock [PORT], a `listeners` list, or sockets from systemd');
  const keys = new Set<string>();
  const names = new Set<string>();
  const listeners = own.map((l) => {
    const pick = <K extends Exclude<keyof ListenerConfig & keyof ProxyConfig, 'backendOptions'>>(k: K) =>
      l[k] ?? config[k] ?? (tableDefault({ proxy: k }) as never);
    const socketGid = pick('socketGid') as number | undefined;
    const socket = {
      force: pick('force') as boolean,
      mode: pick('socketMode') as number,
      ...(socketGid === undefined ? {} : { gid: socketGid }),
    };
    const address = addressOf(l, passed, socket);
    const key = addressKey(address);
    const name = l.name ?? l.unix ?? l.systemd ?? key;
    // A passed socket's name is made here (passedName), `fd:N` included; a configured one must be a label.
    if (l.name !== undefined && l.fd === undefined && !LISTENER_NAME.test(l.name)) {
      throw new ConfigError(
        `listener name ${JSON.stringify(l.name)}: use 1 to 64 letters, digits, ".", "_" or "-" (it goes into metrics and resource paths)`,
      );
    }
    if (keys.has(key)) throw new ConfigError(`two listeners on ${key}`);
    if (names.has(name)) throw new ConfigError(`two listeners named ${JSON.stringify(name)}`);
    keys.add(key);
    names.add(name);
    return {
      key,
      name,
      address,
      protocol: pick('protocol') as string | AnyBackendDefinition,
      backendOptions: { ...config.backendOptions, ...l.backendOptions },
      maxFrameBytes: pick('maxFrameBytes') as number,
      frameTimeoutMs: pick('frameTimeoutMs') as number,
      phaseTimeoutMs: pick('phaseTimeoutMs') as number,
    };
  });
  // Each limit the table declares, from the config or the table's default; the trusted CIDs are a program's choice only.
  const limits: Record<string, unknown> = { trustedCids: config.guestLimits?.trustedCids ?? TRUSTED_CIDS };
  for (const name of OPTION_NAMES) {
    const to: OptionSpec['to'] = OPTIONS[name].to;
    if (typeof to === 'object' && 'limits' in to)
      limits[to.limits] = config.guestLimits?.[to.limits] ?? (OPTIONS[name] as OptionSpec).default;
  }
  return {
    listeners,
    backendCallTimeoutMs: config.backendCallTimeoutMs ?? (tableDefault({ proxy: 'backendCallTimeoutMs' }) as number),
    guestLimits: limits as unknown as GuestLimitOptions,
    ...(config.metrics === undefined ? {} : { metrics: config.metrics }),
    log: config.log,
  };
}

/** A listener's address as text: its key across reloads, and its name unless it has one. */
export function addressKey(a: NormalizedAddress): string {
  if (a.unix !== undefined) return `unix:${a.unix}`;
  if (a.vsock !== undefined) return `vsock:${a.vsock}`;
  return a.fd !== undefined ? `fd:${a.fd}` : `systemd:${a.systemd}`;
}

/** A listener's address: a Unix path with its socket file's options, a vsock port, a passed fd, or a systemd name and the fd passed under it. */
function addressOf(l: ListenerConfig, passed: readonly PassedSocket[], socket: SocketFileOptions): NormalizedAddress {
  if (l.unix !== undefined) return { unix: l.unix, socket };
  if (l.vsock !== undefined) return { vsock: l.vsock };
  if (l.fd !== undefined) return { fd: l.fd };
  const fd = adopt(l.systemd, passed);
  return fd === undefined ? { systemd: l.systemd } : { systemd: l.systemd, fd };
}

/** The fd systemd passed under `name`, if this process was passed it; one name, one socket. */
function adopt(name: string, passed: readonly PassedSocket[]): number | undefined {
  const found = passed.filter((p) => p.name === name);
  if (found.length > 1) {
    throw new ConfigError(
      `systemd passed ${found.length} sockets named ${JSON.stringify(name)} (fds ${found.map((p) => p.fd).join(', ')}); a listener adopts one: give each ListenStream= its own .socket unit and FileDescriptorName=`,
    );
  }
  return found[0]?.fd;
}

/**
 * A passed socket's listener name: its systemd name without the unit
 * suffix (`aproxy-vsock.socket` → `aproxy-vsock`), or `fd:N` where it has
 * none, shares it with another socket, or is not a valid listener name.
 */
function passedName(p: PassedSocket, passed: readonly PassedSocket[]): string {
  const base = p.name?.replace(/\.socket$/, '');
  const unique = passed.filter((q) => q.name === p.name).length === 1;
  return base !== undefined && unique && LISTENER_NAME.test(base) ? base : `fd:${p.fd}`;
}

/** The default the option table declares for a target. */
function tableDefault(target: Exclude<OptionTarget, 'backend-options'>): unknown {
  const [kind, key] = Object.entries(target)[0] as [string, string];
  const name = OPTION_NAMES.find((n) => {
    const to: OptionSpec['to'] = OPTIONS[n].to;
    return typeof to === 'object' && (to as Record<string, string>)[kind] === key;
  });
  return name === undefined ? undefined : (OPTIONS[name] as OptionSpec).default;
}
