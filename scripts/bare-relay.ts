/**
 * The benchmark's baseline: the least a Node process can do to relay SVSM
 * guests to a KBS. Framing, JSON.parse, three keep-alive node:http requests
 * per session, the answers rewritten into the guest's messages. No checks,
 * no deadlines, no logs, no metrics: not something to run, something to
 * measure aproxy against in the same run (scripts/bench.ts).
 *
 *   node dist/scripts/bare-relay.js UNIX_PATH KBS_URL
 */
import { Agent, request } from 'node:http';
import module from 'node:module';
import { createServer, type Socket } from 'node:net';

const [path = '', kbs = ''] = process.argv.slice(2);
const base = new URL(kbs);
const agent = new Agent({ keepAlive: true, maxSockets: 128 });

function call(
  method: string,
  url: string,
  body: string | undefined,
  cookie: string | undefined,
): Promise<{ json: Record<string, unknown>; cookie: string | undefined }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (cookie) headers.cookie = cookie;
    const req = request({ host: base.hostname, port: base.port, path: url, method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({
            json: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
            cookie: res.headers['set-cookie']?.[0]?.split(';')[0],
          });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const std = (url: string) => Buffer.from(url, 'base64url').toString('base64');

function send(s: Socket, value: unknown): void {
  const payload = Buffer.from(JSON.stringify(value));
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(BigInt(payload.length));
  s.write(Buffer.concat([header, payload]));
}

createServer((s) => {
  let buf = Buffer.alloc(0);
  let cookie: string | undefined;
  // The guest's messages, as far as a relay reads them (it trusts the guest: it is only a baseline).
  const handle = async (m: {
    version?: string;
    challenge?: string;
    key: { x: string; y: string };
    evidence: { Snp: { report: string } };
  }) => {
    if ('version' in m) {
      const a = await call('POST', '/kbs/v0/auth', JSON.stringify({ version: '0.4.0', tee: 'snp', 'extra-params': '' }), undefined);
      cookie = a.cookie;
      send(s, { challenge: a.json.nonce, params: ['EcPublicKeyBytes', 'Challenge'] });
      return;
    }
    const key = {
      kty: 'EC',
      crv: 'P-521',
      alg: 'ECDH-ES+A256KW',
      x: Buffer.from(m.key.x, 'base64').toString('base64url'),
      y: Buffer.from(m.key.y, 'base64').toString('base64url'),
    };
    const evidence = { primary_evidence: { 'certs-buf': null, 'snp-report': m.evidence.Snp.report }, additional_evidence: '' };
    const t = await call(
      'POST',
      '/kbs/v0/attest',
      JSON.stringify({ 'init-data': null, 'runtime-data': { nonce: m.challenge, 'tee-pubkey': key }, 'tee-evidence': evidence }),
      cookie,
    );
    const r = (await call('GET', '/kbs/v0/resource/default/sample/test', undefined, cookie)).json as Record<string, string>;
    const h = JSON.parse(Buffer.from(r.protected ?? '', 'base64url').toString()) as { epk: { x: string; y: string } };
    send(s, {
      success: true,
      secret: std(r.ciphertext ?? ''),
      decryption: {
        epk: { x: std(h.epk.x), y: std(h.epk.y) },
        wrapped_cek: std(r.encrypted_key ?? ''),
        aad: Buffer.from(r.protected ?? '').toString('base64'),
        iv: std(r.iv ?? ''),
        tag: std(r.tag ?? ''),
      },
      token: { Jwt: t.json.token },
    });
    // Under NODE_COMPILE_CACHE, as aproxy does (service/compile-cache.ts), so start-up is compared like for like.
    (module as { flushCompileCache?: () => void }).flushCompileCache?.();
  };
  s.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const len = Number(buf.readBigUInt64LE(0));
      if (buf.length < 8 + len) break;
      const frame = buf.subarray(8, 8 + len);
      buf = buf.subarray(8 + len);
      handle(JSON.parse(frame.toString())).catch(() => s.destroy());
    }
  });
  s.on('error', () => undefined);
}).listen(path, () => console.log('listening'));
