import type { RawBackendOptions } from '../backends/contract.js';
import type { AnyBackendDefinition } from '../backends/registry.js';
import type { GuestLimitOptions } from '../frontend/guest-limits.js';
import type { Logger } from './log.js';

/** Settings a listener may override; the rest of ProxyConfig is proxy-wide. */
export interface ListenerSettings {
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
}

/** One place guests connect to: a Unix socket path, a vsock port, or an inherited socket. */
export interface ListenerConfig extends ListenerSettings {
  /** For logs, metrics and the {listener} template field; default: the address. Letters, digits, `.`, `_`, `-`. */
  readonly name?: string;
  readonly unix?: string;
  readonly vsock?: number;
  /** A listening socket passed by a service manager (Unix or vsock). */
  readonly fd?: number;
  /** Replace a stale socket at `unix`. */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
}

/** Everything one running proxy needs; the CLI builds it from flags and the config file. */
export interface ProxyConfig extends ListenerSettings {
  readonly protocol: string | AnyBackendDefinition;
  /** Unix socket path(s) to bind, for serial guests (`-serial unix:PATH`), with the proxy-wide settings. */
  readonly unix?: string | readonly string[];
  /** vsock port(s) to bind on VMADDR_CID_ANY (SVSM uses 1995). */
  readonly vsock?: number | readonly number[];
  /** Listening sockets handed over by a service manager (systemd: 3, 4, …), Unix or vsock, told apart by asking the kernel. */
  readonly listenFds?: readonly number[];
  /** More listeners, each with optional overrides. */
  readonly listeners?: readonly ListenerConfig[];
  /** For `unix` given here: replace a stale socket. */
  readonly force?: boolean;
  readonly socketMode?: number;
  readonly socketGid?: number;
  /** Deadline for the backend's create(), openSession() and close(). */
  readonly backendCallTimeoutMs?: number;
  /** Limits for guests (vsock connection caps; every guest's session budget); each missing field takes its default. */
  readonly guestLimits?: Partial<GuestLimitOptions>;
  /** @deprecated the earlier name of `guestLimits`. */
  readonly vsockLimits?: Partial<GuestLimitOptions>;
  /** `ADDR:PORT` to serve Prometheus metrics at /metrics; off when absent. Not reloadable. */
  readonly metrics?: string;
  readonly log: Logger;
}

export interface ReloadResult {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}
