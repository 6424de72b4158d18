import type { Dispatcher, Pool } from 'undici';
import { keepWasmOnBaseline } from './wasm-baseline.js';

/** One request to the KBS, on the pool's origin. */
export interface HttpRequest {
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string | undefined;
}

/** A whole answer: its status, its Set-Cookie headers and its body as text. */
export interface HttpAnswer {
  readonly status: number;
  readonly setCookie: string[];
  readonly text: string;
}

/** How much of an answer is read, and for how long. */
export interface AnswerLimits {
  /** Larger bodies fail the exchange (AnswerTooLarge). */
  readonly maxBytes: number;
  /**
   * The body must be complete this long after the request was sent. Checked
   * at each chunk: the pool's bodyTimeout already cuts a server that goes
   * quiet, so a trickling one is cut at its first chunk past this, with no
   * timer per exchange.
   */
  readonly deadlineMs: number;
}

/** What the KBS client asks of its connection pool. */
export interface HttpPool {
  /** `onStatus` hears the status as soon as the headers are in, so a body that fails later is still reported with it. */
  exchange(request: HttpRequest, limits: AnswerLimits, onStatus?: (status: number) => void): Promise<HttpAnswer>;
  close(): Promise<void>;
}

/** The server's answer passed `maxBytes`. */
export class AnswerTooLarge extends Error {
  constructor(limit: number) {
    super(`answer larger than ${limit} bytes`);
  }
}

/** The body did not end within `deadlineMs`; undici's own code for a body that stalls, so both read as a timeout. */
export class BodyTooSlow extends Error {
  readonly code = 'UND_ERR_BODY_TIMEOUT';
}

/**
 * undici's Pool from its own file, driven through dispatch() with a handler
 * that gathers the answer. The package's index also loads fetch, WebSocket,
 * the HTTP cache and the mocks (~100 ms of CPU that the first guest after a
 * start waited for), and request() wraps every body in a Readable stream
 * (stream machinery was a tenth of the proxy's CPU per boot; both in
 * docs/performance.md). undici has no "exports" map, so the file is
 * reachable; test/backends/kbs/http-pool.test.ts checks that it is what the
 * package exports, so an upgrade that moves it fails there. `default` is a
 * CommonJS file's module.exports, under Node and in dist/bundle.
 */
export async function openHttpPool(origin: string, options: Pool.Options): Promise<HttpPool> {
  const { default: PoolClass } = await import('undici/lib/dispatcher/pool.js');
  // Before the pool's first connection, where undici compiles its WebAssembly parser.
  keepWasmOnBaseline();
  const pool = new PoolClass(origin, options);
  return {
    exchange: (request, limits, onStatus) =>
      new Promise((resolve, reject) => void pool.dispatch(request, new AnswerReader(limits, onStatus, resolve, reject))),
    close: () => pool.close(),
  };
}

/** Gathers one answer within its limits; settles its promise once. */
class AnswerReader implements Dispatcher.DispatchHandler {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private status = 0;
  private setCookie: string[] = [];
  private settled = false;
  private readonly lateAt: number;

  constructor(
    private readonly limits: AnswerLimits,
    private readonly onStatus: ((status: number) => void) | undefined,
    private readonly resolve: (answer: HttpAnswer) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.lateAt = performance.now() + limits.deadlineMs;
  }

  /** Present so that undici drives this handler by its current interface (it checks for this method). */
  onRequestStart(): void {}

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.status = statusCode;
    const raw = headers['set-cookie'];
    this.setCookie = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    this.onStatus?.(statusCode);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.bytes += chunk.length;
    const { maxBytes, deadlineMs } = this.limits;
    if (this.bytes > maxBytes) this.fail(controller, new AnswerTooLarge(maxBytes));
    else if (performance.now() > this.lateAt) this.fail(controller, new BodyTooSlow(`answer not complete within ${deadlineMs} ms`));
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    const { chunks } = this;
    const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks, this.bytes).toString('utf8');
    this.resolve({ status: this.status, setCookie: this.setCookie, text });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  /** Ends the exchange with `err`; undici closes the connection (a partly read answer cannot be reused). */
  private fail(controller: Dispatcher.DispatchController, err: Error): void {
    this.settled = true;
    this.reject(err);
    controller.abort(err);
  }
}
