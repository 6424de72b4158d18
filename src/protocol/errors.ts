import { ERROR_REASONS, type ErrorCode } from './reason-codes.js';

export { ERROR_REASONS, type ErrorCode, REFUSAL_REASONS, type RefusalReason, WAIT_REASONS, type WaitReason } from './reason-codes.js';

/**
 * Every error aproxy raises on purpose carries a string `code` and a brand
 * (a registered symbol), so `isAproxyError` and `instanceof` also recognise
 * errors made by another copy of this module: a plugin that bundles its own
 * aproxy still throws errors the proxy understands.
 */
export const ERROR_CODES = Object.keys(ERROR_REASONS) as readonly ErrorCode[];
export type AproxyErrorCode = ErrorCode;
const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

const BRAND: unique symbol = Symbol.for('aproxy.error') as never;

export class AproxyError extends Error {
  readonly code: AproxyErrorCode;
  /** Survives duplicate copies of the package, unlike the class identity. */
  readonly [BRAND] = true;
  constructor(code: AproxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /**
   * `err instanceof FrameTooLargeError` holds for an error of that class
   * from any copy of aproxy: branded, and a class of that name in its chain.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || (value as { [BRAND]?: unknown })[BRAND] !== true) return false;
    for (
      let p = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null;
      p !== null;
      p = Object.getPrototypeOf(p) as typeof p
    ) {
      // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass `instanceof` was asked about
      if (p.constructor?.name === this.name) return true;
    }
    return false;
  }
}

/** A frame header announced more bytes than the configured maximum. */
export class FrameTooLargeError extends AproxyError {
  constructor(
    readonly announced: bigint,
    readonly limit: number,
  ) {
    super('FRAME_TOO_LARGE', `frame header announces ${announced} bytes, above the limit of ${limit} (option max-frame-bytes)`);
  }
}

/** The peer closed the stream in the middle of a frame. */
export class FrameTruncatedError extends AproxyError {
  constructor(readonly buffered: number) {
    super('FRAME_TRUNCATED', `peer closed the connection with ${buffered} bytes of an incomplete frame buffered`);
  }
}

/** A frame was started but not completed within the read deadline. */
export class FrameTimeoutError extends AproxyError {
  constructor(
    readonly timeoutMs: number,
    readonly buffered: number,
  ) {
    super('FRAME_TIMEOUT', `incomplete frame (${buffered} bytes so far) not finished within ${timeoutMs} ms`);
  }
}

/** The payload is not JSON as serde_json would accept it. */
export class InvalidJsonError extends AproxyError {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super('INVALID_JSON', `invalid JSON at byte ${offset}: ${message}`);
  }
}

/** JSON that does not have the shape of the expected message; `field` names the culprit. */
export class InvalidMessageError extends AproxyError {
  constructor(
    readonly messageType: string,
    readonly field: string,
    detail: string,
  ) {
    super('INVALID_MESSAGE', `${messageType}: ${field === '' ? '(root)' : field}: ${detail}`);
  }
}

export class InvalidBase64Error extends AproxyError {
  constructor(detail: string) {
    super('INVALID_BASE64', detail);
  }
}

export class UnsupportedVersionError extends AproxyError {
  constructor(readonly version: readonly number[]) {
    super('UNSUPPORTED_VERSION', `protocol version ${version.join('.')} is not supported (only 0.1.0)`);
  }
}

export class UnsupportedTeeError extends AproxyError {
  constructor(
    readonly tee: string,
    readonly by: string,
  ) {
    super('UNSUPPORTED_TEE', `tee "${tee}" is not supported by ${by}`);
  }
}

export class OutOfOrderError extends AproxyError {
  constructor(detail: string) {
    super('OUT_OF_ORDER', detail);
  }
}

export class ChallengeMismatchError extends AproxyError {
  constructor() {
    super('CHALLENGE_MISMATCH', 'attestation request carries a challenge different from the negotiated one');
  }
}

export class InvalidReportError extends AproxyError {
  constructor(detail: string) {
    super('INVALID_REPORT', detail);
  }
}

export class CryptoError extends AproxyError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('CRYPTO', detail, options);
  }
}

/** The attestation server answered with an HTTP status the protocol treats as an error. */
export class BackendHttpError extends AproxyError {
  constructor(
    readonly endpoint: string,
    readonly status: number,
    detail: string,
  ) {
    super('BACKEND_HTTP', `${endpoint} answered HTTP ${status}${detail ? `: ${detail}` : ''}`);
  }
}

/** The attestation server answered, but not in the protocol's shape. */
export class BackendProtocolError extends AproxyError {
  constructor(
    readonly endpoint: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('BACKEND_PROTOCOL', `${endpoint}: ${detail}`, options);
  }
}

/** The attestation server could not be reached (refused, reset, DNS, TLS). */
export class BackendUnreachableError extends AproxyError {
  constructor(
    readonly endpoint: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('BACKEND_UNREACHABLE', `${endpoint}: ${detail}`, options);
  }
}

export class BackendTimeoutError extends AproxyError {
  constructor(
    readonly endpoint: string,
    readonly timeoutMs: number,
  ) {
    super('BACKEND_TIMEOUT', `${endpoint}: no complete answer within ${timeoutMs} ms`);
  }
}

/**
 * The server evaluated the evidence and said no. The guest gets the
 * protocol's failure response; this is an outcome, not a fault of the proxy.
 */
export class AttestationRejectedError extends AproxyError {
  constructor(
    readonly reason: string,
    readonly status?: number,
  ) {
    super('ATTESTATION_REJECTED', `attestation rejected: ${reason}`);
  }
}

export class PluginInvalidError extends AproxyError {
  constructor(
    readonly specifier: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('PLUGIN_INVALID', `backend plugin ${specifier}: ${detail}`, options);
  }
}

export class SocketInUseError extends AproxyError {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super('SOCKET_IN_USE', `${path}: ${detail}`);
  }
}

export class SocketPathError extends AproxyError {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super('SOCKET_PATH', `${path}: ${detail}`);
  }
}

/** A backend broke the contract: a call past its deadline, or a result of the wrong shape. The guest gets the failure answer. */
export class PluginFaultError extends AproxyError {
  constructor(
    readonly backend: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('PLUGIN_FAULT', `backend ${backend}: ${detail}`, options);
  }
}

/** AF_VSOCK cannot be served here; the message says why and what to do. */
export class VsockUnavailableError extends AproxyError {
  constructor(detail: string) {
    super('VSOCK_UNAVAILABLE', `vsock: ${detail}`);
  }
}

/**
 * What a configuration's check at start or reload found, every problem of
 * it, each on a line of its own; the code is the first problem's (they are
 * all configuration or host errors).
 */
export class SetupRefusedError extends AproxyError {
  constructor(readonly problems: ReadonlyArray<{ readonly code: AproxyErrorCode; readonly text: string }>) {
    const [first] = problems;
    super(
      first?.code ?? 'CONFIG',
      problems.length === 1
        ? (first?.text ?? '')
        : `${problems.length} problems:\n${problems.map((p) => `  ${p.text} [${p.code}]`).join('\n')}`,
    );
  }
}

/** The guest's stream went away mid-session. */
export class GuestGoneError extends AproxyError {
  constructor(detail = 'guest connection closed') {
    super('GUEST_GONE', detail);
  }
}

/** The proxy stopped and its shutdown grace ended before the session did. */
export class ShutdownError extends AproxyError {
  constructor(graceMs: number) {
    super('SHUTDOWN', `the proxy is stopping and the session did not end within shutdown-grace-ms (${graceMs} ms)`);
  }
}

/** The guest sent a new NegotiationRequest (it rebooted) before this session ended. */
export class SessionSupersededError extends AproxyError {
  constructor() {
    super('SUPERSEDED', 'the guest started a new session (it rebooted) before this one ended; its answer is not sent');
  }
}

/** A value in the configuration is wrong; the message names the option (not the flag: it may have come from a file or from startProxy()). */
export class ConfigError extends AproxyError {
  constructor(detail: string) {
    super('CONFIG', detail);
  }
}

/** The code of an error for logs and metrics: ours, else INTERNAL. */
export function codeOf(err: unknown): ErrorCode {
  return isAproxyError(err) ? err.code : 'INTERNAL';
}

/** True for an error of any copy of aproxy whose code this copy knows. */
export function isAproxyError(err: unknown): err is AproxyError {
  return err instanceof AproxyError && KNOWN_CODES.has(String((err as { code?: unknown }).code));
}

/**
 * A guest-supplied string as it may appear in an error or a log line: at
 * most 64 characters, then how long it really was. A guest must not be able
 * to write 200 KB into the operator's log with one field.
 */
export function cut(text: string, max = 64): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** One line for a log: the coded message and, when present, the cause's message. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // A cause whose words the message already carries adds nothing.
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? ` (cause: ${err.cause.message})` : '';
  return `${err.message}${cause}`;
}
