import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the KBS in front of the real test KBS does to one endpoint. */
export type Fault =
  | { kind: 'status'; status: number; body?: string }
  | { kind: 'garbage' }
  | { kind: 'wrong-shape' }
  | { kind: 'reset' }
  | { kind: 'drop-mid-body' }
  | { kind: 'hang' }
  | { kind: 'no-cookie' }
  | { kind: 'huge-body' };

export type Endpoint = 'auth' | 'attest' | 'resource';

/**
 * A misbehaving KBS on command: it sits in front of a real TestKbs and, per
 * endpoint, either forwards the exchange or injects a fault, for a given
 * number of requests or until cleared. This is the boundary aproxy does not
 * own, so faking it is the point.
 */
export class FaultyKbs extends EventEmitter {
  private readonly server: Server;
  private readonly faults = new Map<Endpoint, { fault: Fault; remaining: number }>();
  private readonly gates = new Map<Endpoint, Promise<void>>();
  readonly hits: Record<Endpoint, number> = { auth: 0, attest: 0, resource: 0 };
  /** Every Set-Cookie value the real KBS issued through us. */
  readonly cookies: string[] = [];
  /** Requests the client aborted while we hung. */
  aborted = 0;
  private port = 0;

  constructor(private readonly upstream: string) {
    super();
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Delays forwarding requests to `endpoint` until `gate` resolves. */
  holdUntil(endpoint: Endpoint, gate: Promise<void>): void {
    this.gates.set(endpoint, gate);
  }

  inject(endpoint: Endpoint, fault: Fault, times = Number.POSITIVE_INFINITY): void {
    this.faults.set(endpoint, { fault, remaining: times });
  }

  clear(): void {
    this.faults.clear();
  }

  /** Stops listening, as a KBS that goes down: new connections are refused until restart(). */
  async stop(): Promise<void> {
    this.port = (this.server.address() as AddressInfo).port;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port, as the KBS coming back. */
  async restart(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  private take(endpoint: Endpoint): Fault | undefined {
    const f = this.faults.get(endpoint);
    if (f === undefined || f.remaining <= 0) return undefined;
    f.remaining--;
    return f.fault;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    const endpoint: Endpoint = path.includes('/auth') ? 'auth' : path.includes('/attest') ? 'attest' : 'resource';
    this.hits[endpoint]++;
    this.emit('hit', endpoint);
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    await this.gates.get(endpoint);
    const fault = this.take(endpoint);
    switch (fault?.kind) {
      case 'status':
        res
          .writeHead(fault.status, { 'content-type': 'application/json' })
          .end(fault.body ?? JSON.stringify({ type: 'injected', detail: `injected ${fault.status}` }));
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway from some middlebox</html>');
        return;
      case 'wrong-shape':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"hello":"world","nonce":42}');
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'drop-mid-body':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
        res.write('{"nonce":"AAEC');
        setImmediate(() => req.socket.destroy());
        return;
      case 'hang':
        res.on('close', () => {
          this.aborted++;
          this.emit('aborted', endpoint);
        });
        return;
      case 'huge-body':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"token":"${'x'.repeat(3 * 1024 * 1024)}"}`);
        return;
      default:
        break;
    }
    const headers: Record<string, string> = {};
    for (const k of ['content-type', 'cookie', 'accept']) {
      const v = req.headers[k];
      if (typeof v === 'string') headers[k] = v;
    }
    let up: Response;
    let body: Buffer;
    try {
      up = await fetch(new URL(path, this.upstream), {
        method: req.method,
        headers,
        body: req.method === 'POST' ? Buffer.concat(chunks) : undefined,
      });
      body = Buffer.from(await up.arrayBuffer());
    } catch (err) {
      res.writeHead(502).end(String(err));
      return;
    }
    const out: Record<string, string | string[]> = { 'content-type': up.headers.get('content-type') ?? 'application/json' };
    const cookies = up.headers.getSetCookie();
    this.cookies.push(...cookies.map((c) => c.split(';')[0]?.split('=')[1] ?? ''));
    if (cookies.length > 0 && fault?.kind !== 'no-cookie') out['set-cookie'] = cookies;
    res.writeHead(up.status, out).end(body);
  }
}
