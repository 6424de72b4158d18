import type { RawBackendOptions } from '../../backends/contract.js';
import type { AnyBackendDefinition } from '../../backends/registry.js';
import type { GuestLimitOptions } from '../../frontend/guest-limits.js';
import type { LogFormat, Logger, LogLevel } from '../log.js';
import type { PassedSocket } from '../systemd.js';
import type { OptionName } from './options.js';

/**
 * The configuration's types. One word, one thing: a **config** is what a
 * proxy is started or reloaded with (`ProxyConfig`, written by a program or
 * resolved from flags and the file); **overrides** are what a listener may
 * set for itself; **settings** are flags and the file resolved, process
 * options included (`Settings`); a **normalized** config has every default
 * applied and every listener spelled out (normalize.ts).
 */

/** What a listener may set for itself; unset, it takes the proxy-wide value. */
export interface ListenerOverrides {
  /** Built-in backend name (`kbs`, `kbs-test`), a module path, or an already loaded definition. */
  readonly protocol?: string | AnyBackendDefinition;
  /**
   * The backend's own options, checked by its `parseOptions`. For the KBS
   * backends: `url`, `resource` (a template: {host_data}, {measurement},
   * {report_id}, {chip_id}, {cid}, {listener}), `caCert` (a PEM file path),
   * `requestTimeoutMs`, `authRetryBudgetMs`. A listener's are merged over
   * the proxy-wide ones.
   */
  readonly backendOptions?: RawBackendOptions;
  readonly maxFrameBytes?: number;
  readonly frameTimeoutMs?: number;
  readonly phaseTimeoutMs?: number;
  /** Replace a stale socket at `unix` (never a regular file, never a live socket). */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
}

/** Where one listener takes guests: exactly one address. */
export type ListenerAddress =
  | { readonly unix: string; readonly vsock?: never; readonly fd?: never; readonly systemd?: never }
  | { readonly vsock: number; readonly unix?: never; readonly fd?: never; readonly systemd?: never }
  /** A listening socket passed by a service manager (Unix or vsock). */
  | { readonly fd: number; readonly unix?: never; readonly vsock?: never; readonly systemd?: never }
  /** The socket systemd passes under this name (`FileDescriptorName=` in its .socket unit). */
  | { readonly systemd: string; readonly unix?: never; readonly vsock?: never; readonly fd?: never };

/** One place guests connect to, with its overrides. */
export type ListenerConfig = ListenerOverrides &
  ListenerAddress & {
    /** For logs, metrics and the {listener} template field; default: the address. Letters, digits, `.`, `_`, `-`. */
    readonly name?: string;
  };

/** Everything one running proxy needs; `aproxy` resolves it from flags and the config file (resolve.ts). */
export interface ProxyConfig extends ListenerOverrides {
  readonly protocol: string | AnyBackendDefinition;
  /** Unix socket path(s) to bind, for serial guests (`-serial unix:PATH`), with the proxy-wide settings. */
  readonly unix?: string | readonly string[];
  /** vsock port(s) to bind on VMADDR_CID_ANY (SVSM uses 1995). */
  readonly vsock?: number | readonly number[];
  /**
   * Listening sockets handed over by a service manager (systemd: fd 3, 4, …
   * with their `FileDescriptorName=`), Unix or vsock, told apart by asking
   * the kernel. A listener with `systemd: NAME` takes the one so named; each
   * other one is a listener of its own, named after it.
   */
  readonly listenFds?: readonly PassedSocket[];
  /** More listeners, each with optional overrides. */
  readonly listeners?: readonly ListenerConfig[];
  /** Deadline for loading a plugin and for the backend's create(), openSession() and close(). */
  readonly backendCallTimeoutMs?: number;
  /** Limits for guests (vsock connection caps; every guest's session budget); each missing field takes its default. */
  readonly guestLimits?: Partial<GuestLimitOptions>;
  /** `ADDR:PORT` to serve Prometheus metrics at /metrics; off when absent. Not reloadable. */
  readonly metrics?: string;
  readonly log: Logger;
}

/** Options of the `aproxy` process itself, not of the proxy it runs. */
export interface ProcessOptions {
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly logBufferBytes: number;
  readonly shutdownGraceMs: number;
  readonly config?: string;
}

/** Flags and the config file, resolved and checked: the proxy's config and the process's options. */
export interface Settings {
  readonly config: Omit<ProxyConfig, 'log'>;
  readonly process: ProcessOptions;
  /** Each option's checked value (absent when unset), to compare two settings. */
  readonly values: Readonly<Partial<Record<OptionName, unknown>>>;
}
