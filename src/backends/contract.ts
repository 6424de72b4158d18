import type { AttestationRequest, AttestationResponse, NegotiationRequest, NegotiationResponse } from '../protocol/messages.js';

/** The plugin contract version this build of aproxy speaks; a module declaring another is refused (PLUGIN_INVALID). */
export const BACKEND_API_VERSION = 2;

/** The logging surface a backend gets: pino's call shape, `(fields, message)`. */
export interface BackendLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/**
 * A backend's options as the operator wrote them: `--backend-option key=value`
 * (values are strings), the `backend` object of the config file (JSON
 * values), and the shorthand flags `--url`, `--resource`, `--ca-cert`,
 * `--request-timeout-ms` (keys `url`, `resource`, `caCert`, `requestTimeoutMs`).
 */
export type RawBackendOptions = Readonly<Record<string, unknown>>;

/** What a backend gets besides its options, once, at start. */
export interface BackendContext {
  readonly log: BackendLogger;
  /**
   * Resources shared by every backend of the proxy that asks for the same
   * key, such as one HTTP pool per server origin for listeners whose other
   * options differ. The proxy owns their lifetime. Absent when a backend is
   * created outside a proxy (tests); then the backend owns what it opens.
   */
  readonly shared?: SharedResources;
}

export interface SharedResources {
  /**
   * The resource under `key`: `open` runs for the first backend that asks,
   * `close` once the last backend that asked has been closed.
   */
  acquire<T>(key: string, open: () => Promise<T>, close: (value: T) => Promise<void>): Promise<T>;
}

/**
 * A listener's name: letters, digits, `.`, `_`, `-`, 1 to 64 of them, not
 * `.` or `..`. It goes into metric labels and may go into a resource path
 * ({listener}), so the proxy refuses any other name where it is configured.
 */
export const LISTENER_NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$/;

/** A listener a backend will serve, as the configuration gives it (before any guest). */
export interface ListenerFacts {
  readonly name: string;
  readonly transport: 'unix' | 'vsock';
}

/** What the proxy tells a backend about the guest session it opens. */
export interface SessionInfo {
  /** Stable id of the guest connection, for logs. */
  readonly connectionId: string;
  /** 1 for the first boot on this connection, 2 after a reboot, … */
  readonly sessionNumber: number;
  /**
   * How the guest reached the proxy. Not attested: the listener is the
   * host's configuration, a vsock CID the host kernel's statement.
   */
  readonly peer?: { readonly transport: 'unix' | 'vsock'; readonly listener: string; readonly cid?: number };
  readonly log: BackendLogger;
}

/** One exchange with the attestation server, reported for logs and metrics. */
export interface BackendRequestEvent {
  /**
   * What was asked, e.g. `POST /kbs/v0/auth`: a name from the backend and
   * its configuration, never a value from a guest (the KBS backends name a
   * resource by its template, `GET /kbs/v0/resource/vtpm/keys/{host_data}`),
   * because it becomes a metric label.
   */
  readonly endpoint: string;
  /** HTTP status (or the protocol's equivalent) when an answer arrived. */
  readonly status?: number;
  readonly durationMs: number;
  /** Error code when no usable answer arrived, e.g. BACKEND_TIMEOUT. */
  readonly error?: string;
}

/** Passed to each phase. */
export interface PhaseContext {
  /** Aborted when the guest goes away, starts a new session (reboots), or the phase deadline passes. */
  readonly signal: AbortSignal;
  /** When the phase deadline passes (Date.now() milliseconds): plan retries to end before it. */
  readonly deadline: number;
  /** Report each server exchange; it appears in the session's log line and in metrics. */
  observe(event: BackendRequestEvent): void;
  /** Facts for the session's log line (under `notes`), e.g. the resource path asked for. Never secrets. */
  annotate(fields: Readonly<Record<string, string | number>>): void;
}

/**
 * One guest boot. State such as the server's session cookie lives here and
 * nowhere else, so two guests never share it. The proxy calls `negotiate`
 * once, then `attest` at most once, then `close` exactly once, whatever happened.
 *
 * To refuse a guest, throw (an `AttestationRejectedError` says "the server
 * said no"; anything else is logged as a fault) or return `{ success: false }`.
 * The guest then receives the failure answer
 * (`{"success":false,"decryption":null,"token":null}`) in either phase, and
 * its link serves the next boot. Each call has a deadline, and what you
 * return is checked before it reaches the wire (a wrong shape is your
 * PLUGIN_FAULT). The session may be abandoned at any time (the guest left
 * or rebooted): `ctx.signal` aborts, and nothing of it is sent.
 */
export interface BackendSession {
  negotiate(request: NegotiationRequest, ctx: PhaseContext): Promise<NegotiationResponse>;
  attest(request: AttestationRequest, ctx: PhaseContext): Promise<AttestationResponse>;
  close(): void | Promise<void>;
}

/** A running backend: shared resources (HTTP pools, locks) for all sessions. */
export interface Backend {
  openSession(info: SessionInfo): BackendSession | Promise<BackendSession>;
  /** Optional: called once the proxy listens; start slow initialisation here, not in create(). */
  warm?(): void;
  /**
   * Optional, for `aproxy check --probe`: contact the server once, as a
   * guest's first exchange would, and report the exchange with
   * `ctx.observe`; throw what a guest's session would meet if it fails. No
   * retries: the deadline is one exchange's. Never log what the server
   * hands out (nonces, cookies).
   */
  probe?(ctx: PhaseContext): Promise<void>;
  /** Releases shared resources; called once when the proxy stops. */
  close(): Promise<void>;
}

/** What a backend module exports (built in or plugin). */
export interface BackendDefinition<Options = RawBackendOptions> {
  readonly apiVersion: typeof BACKEND_API_VERSION;
  /** Short name, as given to `--protocol`. */
  readonly name: string;
  readonly description?: string;
  /**
   * Validates the operator's options before anything is started, and returns
   * what `create` receives. Throw an error whose message names the key (a
   * `ConfigError` is reported as bad usage, exit code 2). Without it, `create`
   * receives the raw options.
   */
  parseOptions?(raw: RawBackendOptions): Options;
  /**
   * Optional: refuses options that cannot work for one listener it will
   * serve (a field the listener's guests cannot fill), before anything is
   * started, so the operator learns it at start or from `aproxy check`, not
   * from every guest. Throw a `ConfigError` naming the option and the
   * listener.
   */
  checkListener?(options: Options, listener: ListenerFacts): void;
  create(options: Options, context: BackendContext): Backend | Promise<Backend>;
}

/** Freezes a definition; its type parameter ties `parseOptions` to `create`. */
export function defineBackend<Options = RawBackendOptions>(definition: BackendDefinition<Options>): BackendDefinition<Options> {
  return Object.freeze({ ...definition });
}
