import { randomBytes, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RESOURCE_PATH } from '../backends/kbs/options.js';
import { fingerprint } from '../frontend/session-outcome.js';
import {
  type EcPublicKey,
  encodeUrl,
  jweEncrypt,
  KBS_COOKIE_NAME,
  KBS_NEGOTIATION_PARAMS,
  KBS_PROTOCOL_VERSION,
  kbsAttestationSchema,
  kbsRequestSchema,
  parseSnpReport,
  reportDataDigest,
  SNP_MEASUREMENT_BYTES,
  type SnpReport,
  serializeKbsChallenge,
  serializeKbsJwe,
} from '../protocol/index.js';

export interface TestKbsOptions {
  /** The launch measurement a guest must report (48 bytes). */
  readonly measurement: Uint8Array;
  /** The secret released to a guest that attests. */
  readonly secret: Uint8Array;
  /** Resource path served, `default/sample/test` by default. */
  readonly resource?: string;
  /** More resources, path → secret, released besides `resource` (per-guest secrets). */
  readonly resources?: Readonly<Record<string, Uint8Array>>;
  /**
   * A resource policy like Trustee's: release `<repository>/<type>/<tag>`
   * only when `<tag>` is the attested report's host_data (lowercase hex).
   */
  readonly requireHostDataTag?: boolean;
  /**
   * Benchmarks: encrypt the secret once per guest key and reuse the JWE
   * (every check still runs per session). The P-521 work is the KBS's, and
   * a benchmark of the proxy should not measure it.
   */
  readonly reuseJwePerKey?: boolean;
  /** Benchmarks: each request is answered this much later, as by a KBS that far away. */
  readonly delayMs?: number;
  readonly host?: string;
  readonly port?: number;
  /** Receives one line per decision; refusals say why. */
  readonly log?: (line: string) => void;
  /** Sessions older than this are forgotten. */
  readonly sessionTtlMs?: number;
  /** More concurrent sessions than this get 503. */
  readonly maxSessions?: number;
  /** Serve HTTPS with this PEM certificate chain and key. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

interface KbsSessionState {
  readonly nonce: Uint8Array;
  readonly createdAt: number;
  key?: EcPublicKey;
  /** The attested report's host_data, lowercase hex. */
  hostData?: string;
  /** Between /auth and the released resource (or a refusal): counts toward `stats.open`. */
  open: boolean;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    detail: string,
  ) {
    super(detail);
  }
}

const MAX_BODY_BYTES = 256 * 1024;

/**
 * A KBS protocol 0.4.0 server for tests and demos. It takes the upstream
 * `kbs-test` server's flags and endpoints but differs on purpose (README,
 * "Tools for testing"): per-cookie state, so concurrent guests each get
 * their own secret encryption; it checks the nonce, the measurement and the
 * REPORT_DATA binding; it refuses with 400/401 and a JSON reason where the
 * upstream answers 417 with no body; its nonce is 32 bytes, not 16. It
 * does not verify the report signature: there is no AMD key here.
 */
export class TestKbs {
  private readonly server: Server;
  private readonly sessions = new Map<string, KbsSessionState>();
  private readonly resource: string;
  private readonly jweCache = new Map<string, string>();
  private readonly log: (line: string) => void;
  private readonly ttlMs: number;
  private readonly maxSessions: number;
  /** Counters for tests and the demo. */
  /** Requests by kind, sessions open, and TCP connections accepted (a client that reuses its connections makes few). */
  readonly stats = { requests: 0, auth: 0, attested: 0, released: 0, refused: 0, open: 0, maxOpen: 0, connections: 0 };

  constructor(private readonly options: TestKbsOptions) {
    if (options.measurement.length !== SNP_MEASUREMENT_BYTES) {
      throw new RangeError(`measurement must be ${SNP_MEASUREMENT_BYTES} bytes (96 hex digits), got ${options.measurement.length}`);
    }
    this.resource = (options.resource ?? DEFAULT_RESOURCE_PATH).replace(/^\/+/, '');
    this.log = options.log ?? (() => undefined);
    this.ttlMs = options.sessionTtlMs ?? 5 * 60_000;
    this.maxSessions = options.maxSessions ?? 100_000;
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.stats.requests++;
      const answer = () => this.handle(req, res).catch((err: unknown) => this.reply(res, 500, { type: 'internal', detail: String(err) }));
      if ((options.delayMs ?? 0) > 0) setTimeout(answer, options.delayMs);
      else void answer();
    };
    this.server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createServer(handler);
    this.server.keepAliveTimeout = 60_000;
    this.server.on(options.tls ? 'secureConnection' : 'connection', () => this.stats.connections++);
  }

  /** Starts listening; resolves with the base URL (`http://host:port`). */
  async start(): Promise<string> {
    this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1');
    await once(this.server, 'listening');
    return this.url;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kbs');
    try {
      if (req.method === 'POST' && url.pathname === '/kbs/v0/auth') return this.auth(await readJson(req), res);
      if (req.method === 'POST' && url.pathname === '/kbs/v0/attest') return this.attest(this.session(req), await readJson(req), res);
      if (req.method === 'GET' && url.pathname.startsWith('/kbs/v0/resource/')) {
        return this.release(this.session(req), decodeURIComponent(url.pathname.slice('/kbs/v0/resource/'.length)), res);
      }
      req.resume();
      throw new Refusal(404, 'not-found', `no endpoint ${req.method} ${url.pathname}`);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.stats.refused++;
      this.log(`refused ${req.method} ${url.pathname}: ${err.message}`);
      this.reply(res, err.status, { type: err.type, detail: err.message });
    }
  }

  private auth(body: unknown, res: ServerResponse): void {
    const r = kbsRequestSchema.safeParse(body);
    if (!r.success) throw new Refusal(400, 'invalid-request', 'auth body is not a KBS Request');
    if (r.data.version !== KBS_PROTOCOL_VERSION) {
      throw new Refusal(400, 'protocol-version', `protocol version ${r.data.version} is not ${KBS_PROTOCOL_VERSION}`);
    }
    if (r.data.tee !== 'snp') throw new Refusal(400, 'unsupported-tee', `tee ${r.data.tee} is not supported (snp only)`);
    this.sweep();
    if (this.sessions.size >= this.maxSessions) throw new Refusal(503, 'busy', `more than ${this.maxSessions} open sessions`);
    const id = randomBytes(18).toString('base64url');
    const nonce = randomBytes(32);
    this.sessions.set(id, { nonce, createdAt: Date.now(), open: true });
    this.stats.auth++;
    this.stats.open++;
    this.stats.maxOpen = Math.max(this.stats.maxOpen, this.stats.open);
    res.setHeader('set-cookie', `${KBS_COOKIE_NAME}=${id}; Path=/kbs/v0; HttpOnly; Max-Age=${Math.floor(this.ttlMs / 1000)}`);
    this.replyText(res, 200, serializeKbsChallenge(nonce));
  }

  private attest(s: { id: string; state: KbsSessionState }, body: unknown, res: ServerResponse): void {
    try {
      this.verify(s, body, res);
    } catch (err) {
      this.finish(s.state);
      throw err;
    }
  }

  private verify(s: { id: string; state: KbsSessionState }, body: unknown, res: ServerResponse): void {
    const r = kbsAttestationSchema.safeParse(body);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new Refusal(400, 'invalid-attestation', `attestation body: ${issue?.path.join('.')}: ${issue?.message}`);
    }
    const a = r.data;
    const nonce = a['runtime-data'].nonce;
    if (!safeEqual(nonce, s.state.nonce))
      throw new Refusal(401, 'nonce-mismatch', 'runtime-data nonce is not the one this session was given');
    let report: SnpReport;
    try {
      report = parseSnpReport(a['tee-evidence'].primary_evidence['snp-report']);
    } catch (err) {
      throw new Refusal(400, 'invalid-evidence', (err as Error).message);
    }
    if (!safeEqual(report.measurement, this.options.measurement)) {
      throw new Refusal(
        401,
        'measurement-mismatch',
        `measurement ${hex(report.measurement)} is not the expected ${hex(this.options.measurement)}`,
      );
    }
    const key = { x: a['runtime-data']['tee-pubkey'].x, y: a['runtime-data']['tee-pubkey'].y };
    const expected = reportDataDigest(KBS_NEGOTIATION_PARAMS, s.state.nonce, key);
    if (!safeEqual(report.reportData, expected)) {
      throw new Refusal(
        401,
        'report-data-mismatch',
        'report_data is not SHA-512(tee-pubkey x || y || nonce): the report is not bound to this key and nonce',
      );
    }
    s.state.key = key;
    s.state.hostData = hex(report.hostData);
    this.stats.attested++;
    this.log(`attested session ${fingerprint(s.id)}: measurement ok, report_data bound to key and nonce`);
    this.replyText(res, 200, JSON.stringify({ token: testToken(report.measurement, this.ttlMs) }));
  }

  private release(s: { id: string; state: KbsSessionState }, path: string, res: ServerResponse): void {
    if (s.state.key === undefined) throw new Refusal(401, 'not-attested', 'session has not attested');
    const secret = path === this.resource ? this.options.secret : this.options.resources?.[path];
    if (secret === undefined) throw new Refusal(404, 'no-resource', `no resource ${path}`);
    if (this.options.requireHostDataTag && path.split('/').at(-1) !== s.state.hostData) {
      throw new Refusal(401, 'policy', `resource ${path} is not this guest's: its tag is not the attested host_data ${s.state.hostData}`);
    }
    const cacheKey = `${path}:${Buffer.from(s.state.key.x).toString('hex')}`;
    let jwe = this.options.reuseJwePerKey ? this.jweCache.get(cacheKey) : undefined;
    if (jwe === undefined) {
      jwe = serializeKbsJwe(jweEncrypt(secret, s.state.key));
      if (this.options.reuseJwePerKey) this.jweCache.set(cacheKey, jwe);
    }
    this.stats.released++;
    this.finish(s.state);
    this.log(`released ${path} to session ${fingerprint(s.id)}`);
    this.replyText(res, 200, jwe);
  }

  private finish(state: KbsSessionState): void {
    if (state.open) this.stats.open--;
    state.open = false;
  }

  private session(req: IncomingMessage): { id: string; state: KbsSessionState } {
    const id = cookieValue(req.headers.cookie, KBS_COOKIE_NAME);
    if (id === undefined) throw new Refusal(401, 'unauthenticated', `no ${KBS_COOKIE_NAME} cookie`);
    const state = this.sessions.get(id);
    if (state === undefined || Date.now() - state.createdAt > this.ttlMs) {
      throw new Refusal(401, 'unauthenticated', 'unknown or expired session');
    }
    return { id, state };
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (now - s.createdAt > this.ttlMs) this.sessions.delete(id);
  }

  private reply(res: ServerResponse, status: number, body: unknown): void {
    this.replyText(res, status, JSON.stringify(body));
  }

  private replyText(res: ServerResponse, status: number, text: string): void {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_BODY_BYTES) throw new Refusal(413, 'too-large', `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new Refusal(400, 'invalid-json', 'body is not JSON');
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** An unsigned JWT (alg none): this server proves nothing to anyone but the test. */
function testToken(measurement: Uint8Array, ttlMs: number): string {
  const now = Math.floor(Date.now() / 1000);
  const header = encodeUrl(Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })));
  const claims = encodeUrl(
    Buffer.from(
      JSON.stringify({ iss: 'aproxy-test-kbs', iat: now, exp: now + Math.floor(ttlMs / 1000), tee: 'snp', measurement: hex(measurement) }),
    ),
  );
  return `${header}.${claims}.`;
}
