import { setTimeout as wait } from 'node:timers/promises';
import {
  AttestationRejectedError,
  BackendHttpError,
  BackendProtocolError,
  BackendTimeoutError,
  BackendUnreachableError,
  isAproxyError,
} from '../../protocol/errors.js';
import { kbsErrorBodySchema } from '../../protocol/kbs.js';
import { AnswerTooLarge } from './http-pool.js';

/**
 * What the KBS client makes of an HTTP exchange (read whole by
 * http-pool.ts): transport faults and statuses turned into coded errors,
 * cookies. No requests are made here.
 */

export interface JsonAnswer {
  readonly status: number;
  readonly json: unknown;
  readonly setCookie: string[];
}

/** A fault a retry may outlive: the server down or restarting, or a 5xx. A certificate the client refuses is no such fault. */
export function isRetryable(err: unknown): boolean {
  if (!isAproxyError(err)) return false;
  if (err.code === 'BACKEND_UNREACHABLE') return !isCertificateError(err.cause);
  if (err.code === 'BACKEND_TIMEOUT') return true;
  return err instanceof BackendHttpError && err.status >= 500;
}

/** Node's and OpenSSL's codes for a server certificate that does not verify (untrusted, expired, wrong name). */
const CERTIFICATE_CODES =
  /^(ERR_TLS_CERT_|CERT_|UNABLE_TO_(VERIFY|GET_ISSUER|DECRYPT_CERT)|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

function isCertificateError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && CERTIFICATE_CODES.test(e.code)) return true;
  }
  return false;
}

/** Waits `ms`; an abort ends the wait with the signal's reason (a deadline, a guest that left), as the phase reports it. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return wait(ms, undefined, { signal }).catch(() => {
    throw signal.reason;
  });
}

export function transportError(endpoint: string, err: unknown, timeoutMs: number, outer: AbortSignal): Error {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new BackendTimeoutError(endpoint, timeoutMs);
  }
  if (outer.aborted) return outer.reason instanceof Error ? outer.reason : new Error(String(outer.reason));
  if (err instanceof AnswerTooLarge) return new BackendProtocolError(endpoint, err.message);
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  // Node's messages mostly name their code already ("connect ECONNREFUSED 127.0.0.1:1"); undici's do not.
  return new BackendUnreachableError(endpoint, e.code === undefined || message.includes(e.code) ? message : `${e.code}: ${message}`, {
    cause: err,
  });
}

export function wrapProtocol<T>(endpoint: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isAproxyError(err)) throw new BackendProtocolError(endpoint, err.message, { cause: err });
    throw err;
  }
}

/** 4xx from /attest or /resource is the server's verdict; 5xx and others are faults. */
export function refuseUnless200(endpoint: string, a: JsonAnswer): void {
  if (a.status === 200) return;
  const detail = describeErrorBody(a.json);
  if (a.status >= 400 && a.status < 500) {
    throw new AttestationRejectedError(`${endpoint} answered HTTP ${a.status}${detail ? `: ${detail}` : ''}`, a.status);
  }
  throw new BackendHttpError(endpoint, a.status, detail);
}

export function describeErrorBody(json: unknown): string {
  const r = kbsErrorBodySchema.safeParse(json);
  if (!r.success) return '';
  return [r.data.type, r.data.detail]
    .filter((s) => s !== undefined)
    .join(': ')
    .slice(0, 300);
}

/** `name=value` pairs from Set-Cookie headers, joined as a Cookie header. Attributes are dropped. */
export function cookieHeader(setCookie: readonly string[]): string {
  return setCookie
    .map((c) => c.split(';', 1)[0]?.trim() ?? '')
    .filter((pair) => pair.includes('='))
    .join('; ');
}
