import type { Pool } from 'undici';
import { BackendHttpError, BackendProtocolError, codeOf } from '../../protocol/errors.js';
import type { Jwe } from '../../protocol/jwe.js';
import {
  KBS_COOKIE_NAME,
  parseKbsChallenge,
  parseKbsJwe,
  parseKbsTokenResponse,
  serializeKbsAttestation,
  serializeKbsRequest,
} from '../../protocol/kbs.js';
import type { AttestationRequest, Tee } from '../../protocol/messages.js';
import type { PhaseContext, SharedResources } from '../contract.js';
import {
  cookieHeader,
  describeErrorBody,
  isRetryable,
  type JsonAnswer,
  refuseUnless200,
  sleep,
  transportError,
  wrapProtocol,
} from './http-answers.js';
import { type HttpAnswer, type HttpPool, openHttpPool } from './http-pool.js';
import { DEFAULT_AUTH_RETRY_BUDGET_MS } from './options.js';

/** Largest KBS answer we read; a JWE for a vTPM secret is a few KiB. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface KbsClientOptions {
  /** The KBS base URL as parseKbsOptions checked it (http or https, ending in `/`). */
  readonly url: string;
  readonly requestTimeoutMs: number;
  readonly caCert?: string | undefined;
  /** Upper bound on sockets to the KBS, shared by all guests. */
  readonly connections?: number;
  /**
   * How long /auth is retried after a connection error, a timeout or a 5xx,
   * from the first attempt; 0 turns retries off. Default 10 s: a KBS restart.
   */
  readonly authRetryBudgetMs?: number;
  /** First backoff window before an /auth retry; doubles each time up to `retryCapMs`, with full jitter. Default 200 ms. */
  readonly retryBaseMs?: number;
  /** Largest backoff window. Default 2 s. */
  readonly retryCapMs?: number;
  /**
   * Where the proxy keeps pools shared across clients (listeners with other
   * resources, a reload): one undici pool per origin and connection
   * options. Without it the client owns its pool and closes it.
   */
  readonly shared?: SharedResources | undefined;
}

/** One /auth retry, told to the caller (the session logs and counts them). */
export interface RetryInfo {
  readonly endpoint: string;
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: Error;
}

/** The cookies one KBS session set, as the `Cookie` header value to send back. */
export type SessionCookie = string;

/**
 * KBS protocol 0.4.0 over one shared undici Agent (keep-alive, pooled) for
 * every guest. No cookie jar: each session's cookie is carried explicitly,
 * so sessions can never see each other's.
 */
export class KbsClient {
  private readonly base: URL;
  private readonly basePath: string;
  private readonly poolOptions: Pool.Options;
  private readonly poolKey: string;
  private pool: Promise<HttpPool> | undefined;
  private readonly shared: SharedResources | undefined;
  private readonly timeoutMs: number;
  private readonly authRetryBudgetMs: number;
  private readonly retryBaseMs: number;
  private readonly retryCapMs: number;

  constructor(options: KbsClientOptions) {
    // Checked once, with the operator's wording, by parseKbsOptions.
    const base = new URL(options.url);
    this.base = base;
    this.basePath = base.pathname;
    this.timeoutMs = options.requestTimeoutMs;
    this.authRetryBudgetMs = options.authRetryBudgetMs ?? DEFAULT_AUTH_RETRY_BUDGET_MS;
    this.retryBaseMs = options.retryBaseMs ?? 200;
    this.retryCapMs = options.retryCapMs ?? 2000;
    this.shared = options.shared;
    this.poolOptions = {
      connections: options.connections ?? 128,
      keepAliveTimeout: 30_000,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      connect: options.caCert === undefined ? {} : { ca: options.caCert },
    };
    // Clients with the same origin and connection settings (listeners with different resources, a reload) share one pool.
    this.poolKey = JSON.stringify([base.origin, options.requestTimeoutMs, options.connections ?? 128, options.caCert ?? null]);
  }

  /**
   * Loads undici and creates the pool for the KBS origin. Done on first use
   * (or by warm() once the proxy listens) because loading undici takes
   * longer than everything else the proxy does before it can accept guests.
   */
  private http(): Promise<HttpPool> {
    if (this.pool === undefined) {
      const open = () => openHttpPool(this.base.origin, this.poolOptions);
      this.pool = this.shared === undefined ? open() : this.shared.acquire(`kbs-pool ${this.poolKey}`, open, (pool) => pool.close());
    }
    return this.pool;
  }

  warm(): void {
    void this.http();
  }

  /**
   * POST /kbs/v0/auth: returns the challenge bytes and the session cookie.
   * Retried on transport errors, timeouts and 5xx for the retry budget: a
   * new /auth only opens a new server session, so replaying it is harmless,
   * and a KBS that restarts (seconds) should cost a slower boot, not a
   * failed one. Backoff is capped exponential with full jitter, which
   * spreads a host's worth of simultaneous boots over each window. No retry
   * is started that could not finish before the phase deadline; past the
   * budget the last error stands, so the guest is answered promptly.
   */
  async auth(tee: Tee, ctx: PhaseContext, onRetry?: (info: RetryInfo) => void): Promise<{ challenge: Uint8Array; cookie: SessionCookie }> {
    const giveUpAt = Math.min(Date.now() + this.authRetryBudgetMs, ctx.deadline - this.timeoutMs);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.authOnce(tee, ctx);
      } catch (err) {
        if (ctx.signal.aborted || !isRetryable(err)) throw err;
        const delayMs = Math.round(Math.random() * Math.min(this.retryCapMs, this.retryBaseMs * 2 ** (attempt - 1)));
        if (Date.now() + delayMs >= giveUpAt) throw err;
        onRetry?.({ endpoint: 'POST /kbs/v0/auth', attempt, delayMs, error: err as Error });
        await sleep(delayMs, ctx.signal);
      }
    }
  }

  /** One POST /kbs/v0/auth, no retry (the probe's exchange). */
  async authOnce(tee: Tee, ctx: PhaseContext): Promise<{ challenge: Uint8Array; cookie: SessionCookie }> {
    const endpoint = 'POST /kbs/v0/auth';
    const a = await this.exchange(endpoint, 'kbs/v0/auth', { method: 'POST', body: serializeKbsRequest(tee) }, ctx);
    if (a.status !== 200) throw new BackendHttpError(endpoint, a.status, describeErrorBody(a.json));
    const challenge = wrapProtocol(endpoint, () => parseKbsChallenge(a.json));
    const cookie = cookieHeader(a.setCookie);
    if (!cookie.includes(`${KBS_COOKIE_NAME}=`)) {
      throw new BackendProtocolError(endpoint, `answer has no ${KBS_COOKIE_NAME} cookie; the session cannot continue`);
    }
    return { challenge, cookie };
  }

  /** POST /kbs/v0/attest: returns the attestation token. A non-200 4xx is a refusal. */
  async attest(cookie: SessionCookie, req: AttestationRequest, ctx: PhaseContext): Promise<string> {
    const endpoint = 'POST /kbs/v0/attest';
    const a = await this.exchange(endpoint, 'kbs/v0/attest', { method: 'POST', body: serializeKbsAttestation(req), cookie }, ctx);
    refuseUnless200(endpoint, a);
    return wrapProtocol(endpoint, () => parseKbsTokenResponse(a.json));
  }

  /**
   * GET /kbs/v0/resource/<path>: returns the JWE that carries the secret.
   * `route` names the exchange in metrics: the configured template, not the
   * path resolved for this guest, so series do not grow with the guests.
   */
  async resource(cookie: SessionCookie, path: string, route: string, ctx: PhaseContext): Promise<Jwe> {
    const endpoint = `GET /kbs/v0/resource/${path}`;
    const a = await this.exchange(endpoint, `kbs/v0/resource/${path}`, { method: 'GET', cookie }, ctx, `GET /kbs/v0/resource/${route}`);
    refuseUnless200(endpoint, a);
    return wrapProtocol(endpoint, () => parseKbsJwe(a.json));
  }

  /** Closes the pool if it is this client's own; a shared one is closed by its owner once nobody uses it. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined && this.shared === undefined) await (await pool).close();
  }

  /** One HTTP exchange, reported to `ctx.observe` (as `route`) whatever its outcome. */
  private async exchange(
    endpoint: string,
    path: string,
    o: { method: 'GET' | 'POST'; body?: string; cookie?: string },
    ctx: PhaseContext,
    route = endpoint,
  ): Promise<JsonAnswer> {
    const started = performance.now();
    let status: number | undefined;
    try {
      const answer = await this.exchangeRaw(endpoint, path, o, ctx.signal, (s) => (status = s));
      ctx.observe({ endpoint: route, status: answer.status, durationMs: performance.now() - started });
      return answer;
    } catch (err) {
      ctx.observe({ endpoint: route, status, durationMs: performance.now() - started, error: codeOf(err) });
      throw err;
    }
  }

  private async exchangeRaw(
    endpoint: string,
    path: string,
    o: { method: 'GET' | 'POST'; body?: string; cookie?: string },
    outer: AbortSignal,
    onStatus: (status: number) => void,
  ): Promise<JsonAnswer> {
    // The request deadline is undici's own (headersTimeout, bodyTimeout: no
    // answer, or a body that stalls, within requestTimeoutMs): no
    // controller or timer of ours per exchange, which profiles showed. The
    // phase's signal is deliberately not given to undici: aborting a request
    // destroys its pooled connection (with HTTPS, a handshake to redo), and
    // a guest that floods NegotiationRequests would churn them. An exchange
    // whose session ended runs to its end; the session no longer waits for
    // it (the phase races the signal) and the link starts its next session
    // only after it, so one link has at most one exchange going.
    const headers: Record<string, string> = { accept: 'application/json' };
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    if (o.cookie !== undefined) headers.cookie = o.cookie;
    const pool = await this.http();
    let answer: HttpAnswer;
    try {
      // The whole answer is read even when the session has ended (a KBS answer is small), so the connection returns to the pool.
      answer = await pool.exchange(
        { path: this.basePath + path, method: o.method, headers, body: o.body },
        { maxBytes: MAX_RESPONSE_BYTES, deadlineMs: this.timeoutMs },
        onStatus,
      );
    } catch (err) {
      throw transportError(endpoint, err, this.timeoutMs, outer);
    }
    if (outer.aborted) throw outer.reason instanceof Error ? outer.reason : new Error(String(outer.reason));
    return this.interpret(endpoint, answer);
  }

  private interpret(endpoint: string, { status, setCookie, text }: HttpAnswer): JsonAnswer {
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      if (status === 200) {
        throw new BackendProtocolError(endpoint, `answer is not JSON (${text.length} bytes, starts ${JSON.stringify(text.slice(0, 40))})`);
      }
      json = undefined;
    }
    return { status, json, setCookie };
  }
}
