import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../protocol/errors.js';
import { LISTENER_NAME, type ListenerFacts, type RawBackendOptions } from '../contract.js';
import { MAX_TIMER_MS } from '../deadline.js';
import { parseResourceTemplate, type ResourceTemplate } from './resource-template.js';

/** The resource the reference aproxy hard-codes. */
export const DEFAULT_RESOURCE_PATH = 'default/sample/test';
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** What both KBS backends run with, validated. */
export interface KbsOptions {
  /** Base URL of the KBS, http(s), ending in `/`. */
  readonly url: string;
  /** `<repository>/<type>/<tag>`, no leading slash; may hold fields such as {host_data}, resolved per guest. */
  readonly resource: ResourceTemplate;
  /** Upper bound for one HTTP exchange with the KBS. */
  readonly requestTimeoutMs: number;
  /** PEM CA bundle (the contents of the `caCert` file) replacing the system roots for https. */
  readonly caCert?: string;
  /** How long /auth is retried when the KBS is unreachable, times out or answers 5xx; 0: no retries. */
  readonly authRetryBudgetMs: number;
}

/** How long /auth is retried by default: about what a KBS restart takes. */
export const DEFAULT_AUTH_RETRY_BUDGET_MS = 10_000;

const KEYS = ['url', 'resource', 'requestTimeoutMs', 'caCert', 'authRetryBudgetMs'] as const;

/**
 * Checks the KBS backends' options. Values may be strings (from
 * `--backend-option key=value`) or JSON values (from the config file).
 * Each message names the backend option (the flags --url etc. and the config
 * file's keys set the same options).
 */
export function parseKbsOptions(raw: RawBackendOptions, backend = 'kbs'): KbsOptions {
  const unknown = Object.keys(raw).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(
      `the ${backend} backend has no option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (it takes ${KEYS.join(', ')})`,
    );
  }
  const url = raw.url;
  if (typeof url !== 'string' || url === '')
    throw new ConfigError(`the ${backend} backend needs the KBS URL: backend option url, e.g. http://kbs:8080`);
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new ConfigError(`backend option url ${JSON.stringify(url)} is not a URL (expected e.g. http://kbs:8080)`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new ConfigError(`backend option url must be http:// or https://, got ${base.protocol}`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  // The client appends kbs/v0/…: a URL that already ends so would ask for /kbs/v0/kbs/v0/auth and get a 404 for every guest.
  if (/\/kbs\/v0\/$/.test(base.pathname)) {
    throw new ConfigError(
      `backend option url ${JSON.stringify(url)} ends in /kbs/v0: give the KBS's base URL (e.g. ${base.origin}${base.pathname.replace(/kbs\/v0\/$/, '')}); aproxy adds kbs/v0/auth and the rest`,
    );
  }

  const resource = raw.resource ?? DEFAULT_RESOURCE_PATH;
  if (typeof resource !== 'string' || resource.replace(/^\/+/, '') === '')
    throw new ConfigError('backend option resource must be a path such as default/sample/test');
  const template = parseResourceTemplate(resource.replace(/^\/+/, ''));

  const requestTimeoutMs = integer(raw.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 'backend option requestTimeoutMs', 1);
  const authRetryBudgetMs = integer(raw.authRetryBudgetMs ?? DEFAULT_AUTH_RETRY_BUDGET_MS, 'backend option authRetryBudgetMs', 0);

  let caCert: string | undefined;
  if (raw.caCert !== undefined) {
    if (typeof raw.caCert !== 'string') throw new ConfigError('backend option caCert must be the path of a PEM file');
    try {
      caCert = readFileSync(raw.caCert, 'utf8');
    } catch (err) {
      throw new ConfigError(`backend option caCert ${raw.caCert}: ${(err as Error).message}`);
    }
    checkCaBundle(raw.caCert, caCert);
  }
  return { url: base.toString(), resource: template, requestTimeoutMs, authRetryBudgetMs, ...(caCert === undefined ? {} : { caCert }) };
}

/** A whole number of at least `min`, from a JSON number or a string of digits. */
/** A duration in ms: an integer from `min` to what a timer keeps. */
function integer(value: unknown, option: string, min: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > MAX_TIMER_MS) {
    throw new ConfigError(
      `${option} must be ${min > 0 ? 'a positive' : 'a non-negative'} integer of milliseconds, at most ${MAX_TIMER_MS} (about 24.8 days), got ${String(value)}`,
    );
  }
  return n;
}

/** The resource template's fields that a listener's guests cannot fill. */
export function checkKbsListener(options: KbsOptions, listener: ListenerFacts): void {
  const template = options.resource;
  if (template.fields.has('cid') && listener.transport !== 'vsock') {
    throw new ConfigError(
      `backend option resource ${JSON.stringify(template.source)} uses {cid}, which only vsock guests have; listener ${listener.name} serves ${listener.transport} guests`,
    );
  }
  if (template.fields.has('listener') && !LISTENER_NAME.test(listener.name)) {
    throw new ConfigError(
      `backend option resource ${JSON.stringify(template.source)} uses {listener}, but listener ${JSON.stringify(listener.name)} has no name that can go into a path: give it a name`,
    );
  }
}

/** A CA bundle is PEM certificates and nothing else: a key or garbage there would fail every TLS handshake, at every guest. */
function checkCaBundle(path: string, pem: string): void {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(
      `backend option caCert ${path} holds a private key: it takes the CA certificates (PEM) to trust, and no key belongs there`,
    );
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`backend option caCert ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`backend option caCert ${path}: certificate ${i + 1} does not parse (${(err as Error).message})`);
    }
  }
}
