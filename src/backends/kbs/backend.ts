import { OutOfOrderError, UnsupportedTeeError } from '../../protocol/errors.js';
import { jweToAttestationResponse } from '../../protocol/jwe.js';
import { KBS_NEGOTIATION_PARAMS } from '../../protocol/kbs.js';
import type { AttestationRequest, AttestationResponse, NegotiationRequest, NegotiationResponse } from '../../protocol/messages.js';
import { parseSnpReport, SNP_REPORT_BYTES, type SnpReport } from '../../protocol/snp-report.js';
import { type Backend, type BackendContext, type BackendSession, defineBackend, type PhaseContext, type SessionInfo } from '../contract.js';
import { KbsClient, type SessionCookie } from './client.js';
import { Mutex } from './mutex.js';
import { checkKbsListener, type KbsOptions, parseKbsOptions } from './options.js';
import { type ResourceTemplate, resolveResource } from './resource-template.js';

/** One guest boot against a KBS: /auth at negotiation, /attest then /resource at attestation. */
class KbsSession implements BackendSession {
  private cookie: SessionCookie | undefined;

  constructor(
    private readonly client: KbsClient,
    private readonly resource: ResourceTemplate,
    private readonly backendName: string,
    private readonly info: SessionInfo,
  ) {}

  async negotiate(req: NegotiationRequest, ctx: PhaseContext): Promise<NegotiationResponse> {
    // The KBS body carries only an SNP report; other TEEs would fail later, less clearly.
    if (req.tee !== 'snp') throw new UnsupportedTeeError(req.tee, `the ${this.backendName} backend`);
    // A KBS that is down makes every booting guest retry: one warning per session, the count in its one session line.
    let retries = 0;
    const { challenge, cookie } = await this.client.auth(req.tee, ctx, (r) => {
      if (++retries === 1) {
        this.info.log.warn(
          { endpoint: r.endpoint, delayMs: r.delayMs, error: r.error.message },
          `${r.endpoint} failed, retrying within the retry budget (the session's line counts the retries): ${r.error.message}`,
        );
      }
      ctx.annotate({ authRetries: retries, authLastError: r.error.message });
    });
    this.cookie = cookie;
    return { challenge, params: [...KBS_NEGOTIATION_PARAMS] };
  }

  async attest(req: AttestationRequest, ctx: PhaseContext): Promise<AttestationResponse> {
    const cookie = this.cookie;
    if (cookie === undefined) throw new OutOfOrderError('attestation without a KBS session (negotiation did not complete)');
    // Resolved before /attest: a guest whose evidence cannot fill the template is refused without a server round trip.
    const path = resolveResource(this.resource, reportOf(req), this.info.peer);
    ctx.annotate({ resource: path });
    const token = await this.client.attest(cookie, req, ctx);
    const jwe = await this.client.resource(cookie, path, this.resource.source, ctx);
    return jweToAttestationResponse(jwe, token);
  }

  close(): void {
    this.cookie = undefined;
  }
}

/** The shared part of both KBS backends: one client, sessions made by `open`. */
/** The SNP report in the evidence, when there is a well-formed one. */
function reportOf(req: AttestationRequest): SnpReport | undefined {
  const bytes = req.evidence.value.report;
  return bytes.length === SNP_REPORT_BYTES ? parseSnpReport(bytes) : undefined;
}

function kbsBackendFor(
  name: string,
  options: KbsOptions,
  { shared }: BackendContext,
  open: (session: KbsSession, info: SessionInfo) => BackendSession,
): Backend {
  const client = new KbsClient({
    url: options.url,
    requestTimeoutMs: options.requestTimeoutMs,
    caCert: options.caCert,
    authRetryBudgetMs: options.authRetryBudgetMs,
    shared,
  });
  return {
    openSession: (info: SessionInfo) => open(new KbsSession(client, options.resource, name, info), info),
    warm: () => client.warm(),
    // The first exchange of every session, once, no retry: /auth. Its nonce and cookie are dropped here.
    probe: async (ctx) => void (await client.authOnce('snp', ctx)),
    close: () => client.close(),
  };
}

/** KBS protocol 0.4.0 (Trustee): sessions run concurrently, each with its own cookie. */
export const kbsBackend = defineBackend<KbsOptions>({
  apiVersion: 2,
  name: 'kbs',
  description: 'Key Broker Service protocol 0.4.0 (Trustee); guests attest concurrently',
  parseOptions: (raw) => parseKbsOptions(raw, 'kbs'),
  checkListener: checkKbsListener,
  create: (options, context): Backend => kbsBackendFor('kbs', options, context, (session) => session),
});

/**
 * How long one session may hold the kbs-test server before others get their
 * turn. Its state is global (PROTOCOL.md §8): a session that negotiated and
 * then went quiet would otherwise block every other guest.
 */
export const KBS_TEST_MAX_HOLD_MS = 60_000;

/**
 * `--protocol kbs-test`: the KBS protocol, profiled for the upstream
 * `kbs-test` server, which encrypts to the last key any session pushed. So
 * whole sessions run one at a time, in arrival order. (aproxy's own
 * `test-kbs` server keeps state per session and needs no such profile.)
 */
export const upstreamKbsTestBackend = defineBackend<KbsOptions>({
  apiVersion: 2,
  name: 'kbs-test',
  description: 'for the upstream kbs-test server (global state): one whole session at a time',
  parseOptions: (raw) => parseKbsOptions(raw, 'kbs-test'),
  checkListener: checkKbsListener,
  create(options, context): Backend {
    const lock = new Mutex();
    return kbsBackendFor('kbs-test', options, context, (session, info) => new SerializedSession(session, lock, info));
  },
});

/** Holds the lock from the start of negotiation until close (or the hold limit). */
class SerializedSession implements BackendSession {
  private release: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  /** The last server call; an abandoned one keeps the lock until it ends, as it may still change the server's state. */
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly inner: BackendSession,
    private readonly lock: Mutex,
    private readonly info: SessionInfo,
    private readonly maxHoldMs = KBS_TEST_MAX_HOLD_MS,
  ) {}

  async negotiate(req: NegotiationRequest, ctx: PhaseContext): Promise<NegotiationResponse> {
    if (this.lock.locked) {
      this.info.log.debug({ queued: this.lock.waiting + 1 }, 'waiting for the kbs-test server (one session at a time)');
    }
    this.release = await this.lock.acquire(ctx.signal);
    this.timer = setTimeout(() => {
      this.expired = true;
      this.info.log.warn({ maxHoldMs: this.maxHoldMs }, 'session held the kbs-test server too long; letting the next guest in');
      this.unlock();
    }, this.maxHoldMs);
    this.timer.unref();
    return this.track(this.inner.negotiate(req, ctx));
  }

  async attest(req: AttestationRequest, ctx: PhaseContext): Promise<AttestationResponse> {
    if (this.expired || this.release === undefined) {
      throw new OutOfOrderError(`attestation came more than ${this.maxHoldMs} ms after negotiation; the kbs-test session was given up`);
    }
    return this.track(this.inner.attest(req, ctx));
  }

  async close(): Promise<void> {
    try {
      await this.inner.close();
    } finally {
      const unlock = () => this.unlock();
      void this.inFlight.then(unlock, unlock);
    }
  }

  private track<T>(call: Promise<T>): Promise<T> {
    this.inFlight = call;
    return call;
  }

  private unlock(): void {
    clearTimeout(this.timer);
    this.release?.();
    this.release = undefined;
  }
}
