import type {
  AttestationRequest,
  AttestationResponse,
  NegotiationRequest,
  NegotiationResponse,
} from '../protocol/wire.js';

/** The plugin contract version this build of aproxy speaks. */
export const BACKEND_API_VERSION = 1;

/** The logging surface a backend gets: pino's call shape, `(fields, message)`. */
export interface BackendLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** Proxy-wide settings handed to a backend once, at start. */
export interface BackendOptions {
  /** The attestation server's base URL (`--url`). */
  readonly url: string;
  /** Resource path to fetch (`--resource`), e.g. `default/sample/test`. */
  readonly resource: string;
  /** Upper bound for one HTTP exchange with the server. */
  readonly requestTimeoutMs: number;
  /** PEM CA bundle to trust for HTTPS, replacing the system roots (`--ca-cert`). */
  readonly caCert?: string | undefined;
  readonly log: BackendLogger;
}

/** What the proxy tells a backend about the guest session it opens. */
export interface SessionInfo {
  /** Stable id of the guest connection, for logs. */
  readonly connectionId: string;
  /** 1 for the first boot on this connection, 2 after a reboot, … */
  readonly sessionNumber: number;
  readonly log: BackendLogger;
}

/** One exchange with the attestation server, reported for logs and metrics. */
export interface BackendRequestEvent {
  /** What was asked, e.g. `POST /kbs/v0/auth`. */
  readonly endpoint: string;
  /** HTTP status (or the protocol's equivalent) when an answer arrived. */
  readonly status?: number;
  readonly durationMs: number;
  /** Error code when no usable answer arrived, e.g. BACKEND_TIMEOUT. */
  readonly error?: string;
}

/** Passed to each phase. */
export interface PhaseContext {
  /** Aborted when the guest goes away or the phase deadline passes. */
  readonly signal: AbortSignal;
  /** Report each server exchange; it appears in the session's log line and in metrics. */
  observe(event: BackendRequestEvent): void;
}

/**
 * One guest boot. State such as the server's session cookie lives here and
 * nowhere else, so two guests never share it. The proxy calls `negotiate`
 * once, then `attest` at most once, then `close` exactly once, whatever happened.
 *
 * To refuse a guest, throw (an `AttestationRejectedError` says "the server
 * said no"; anything else is logged as a fault) or return `{ success: false }`.
 * In the attestation phase the guest then receives the protocol's failure
 * response; in the negotiation phase, which has no failure message, its
 * connection is closed.
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
  /** Releases shared resources; called once when the proxy stops. */
  close(): Promise<void>;
}

/** What a backend module exports (built in or plugin). */
export interface BackendDefinition {
  readonly apiVersion: typeof BACKEND_API_VERSION;
  /** Short name, as given to `--protocol`. */
  readonly name: string;
  readonly description?: string;
  create(options: BackendOptions): Backend | Promise<Backend>;
}

/** Checks a definition's shape once, at definition time, and freezes it. */
export function defineBackend(definition: BackendDefinition): BackendDefinition {
  return Object.freeze({ ...definition });
}
