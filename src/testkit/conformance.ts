import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendSession, RawBackendOptions } from '../backends/contract.js';
import { type AnyBackendDefinition, assertBackendDefinition, resolveBackend } from '../backends/registry.js';
import type { SessionOutcome } from '../frontend/session.js';
import { describeError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/framing.js';
import { SNP_MEASUREMENT_BYTES } from '../protocol/snp-report.js';
import { createLogger, type Logger } from '../service/log.js';
import { startProxy } from '../service/proxy.js';
import type { RunningProxy } from '../service/running-proxy.js';
import { SimulatedGuest } from './guest-simulator.js';

export interface ConformanceOptions {
  /** The backend under test: a definition, a module path, or a built-in name. */
  readonly backend: AnyBackendDefinition | string;
  /** The backend's own options, as an operator would give them (for the KBS backends: url, resource, …). */
  readonly backendOptions: RawBackendOptions;
  /** A launch measurement the backend's server accepts: 48 bytes, or 96 hex digits. */
  readonly measurement: Uint8Array | string;
  /** The secret a guest with `measurement` must decrypt (bytes, or hex); checked when given. */
  readonly expectSecret?: Uint8Array | string;
  /** A measurement the server must refuse (48 bytes, or 96 hex digits); the refusal check runs when given. */
  readonly rejectedMeasurement?: Uint8Array | string;
  /** Guests attesting at once in the concurrency check. Default 8. */
  readonly concurrency?: number;
  readonly log?: Logger;
}

export interface ConformanceCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export interface ConformanceReport {
  readonly ok: boolean;
  readonly checks: ConformanceCheck[];
}

/**
 * Drives simulated SVSM guests through a real proxy running the backend
 * under test, and reports which parts of the contract held. For plugin
 * authors: call it from your own tests against your server (or a fake of it).
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const o = {
    ...options,
    measurement: bytesOption('measurement', options.measurement, SNP_MEASUREMENT_BYTES),
    expectSecret: options.expectSecret === undefined ? undefined : bytesOption('expectSecret', options.expectSecret),
    rejectedMeasurement:
      options.rejectedMeasurement === undefined
        ? undefined
        : bytesOption('rejectedMeasurement', options.rejectedMeasurement, SNP_MEASUREMENT_BYTES),
  };
  const checks: ConformanceCheck[] = [];
  const check = async (name: string, run: () => Promise<unknown>) => {
    try {
      const problem = await run();
      checks.push(typeof problem === 'string' && problem !== '' ? { name, ok: false, detail: problem } : { name, ok: true });
    } catch (err) {
      checks.push({ name, ok: false, detail: describeError(err) });
    }
  };

  let definition: AnyBackendDefinition | undefined;
  await check('the module exports a valid backend definition', async () => {
    definition = typeof o.backend === 'string' ? await resolveBackend(o.backend) : assertBackendDefinition(o.backend, o.backend.name);
  });
  if (definition === undefined) return { ok: false, checks };

  const counts = { opened: 0, closed: 0, doubleClosed: 0 };
  const counted = countingDefinition(definition, counts);
  const dir = await mkdtemp(join(tmpdir(), 'aproxy-conformance-'));
  const unix = join(dir, 'proxy.sock');
  const outcomes: SessionOutcome[] = [];
  let proxy: RunningProxy | undefined;
  const guests: SimulatedGuest[] = [];
  const boot = async (g: SimulatedGuest, measurement = o.measurement) =>
    g.boot({ measurement, expectSecret: measurement === o.measurement ? o.expectSecret : undefined });
  const newGuest = async () => {
    const g = await SimulatedGuest.connect(unix);
    guests.push(g);
    return g;
  };
  try {
    await check('create() starts the backend and the proxy serves with it', async () => {
      proxy = await startProxy({
        protocol: counted,
        backendOptions: o.backendOptions,
        unix,
        log: o.log ?? createLogger({ level: 'silent' }),
      });
      proxy.server.on('session', (s: SessionOutcome) => outcomes.push(s));
    });
    if (proxy === undefined) return { ok: false, checks };
    const server = proxy.server;
    const explain = (r: { error?: string; secretMatches?: boolean }) =>
      r.error ?? (r.secretMatches === false ? 'the decrypted secret is not the expected one' : 'failed');

    await check('a guest attests and decrypts its secret', async () => {
      const r = await boot(await newGuest());
      return r.ok ? undefined : `${explain(r)}${lastDetail(outcomes)}`;
    });

    await check('two boots in sequence on one serial link both succeed', async () => {
      const g = await newGuest();
      const a = await boot(g);
      const b = await boot(g);
      return a.ok && b.ok ? undefined : `${a.ok ? 'second' : 'first'} boot: ${explain(a.ok ? b : a)}${lastDetail(outcomes)}`;
    });

    const n = o.concurrency ?? 8;
    await check(`${n} guests attesting at once each decrypt their own secret`, async () => {
      const gs = await Promise.all(Array.from({ length: n }, newGuest));
      const rs = await Promise.all(gs.map((g) => boot(g)));
      const bad = rs.filter((r) => !r.ok);
      return bad.length === 0 ? undefined : `${bad.length}/${n} failed, first: ${explain(bad[0] ?? {})}`;
    });

    if (o.rejectedMeasurement !== undefined) {
      const rejected = o.rejectedMeasurement;
      await check('a refused measurement gets success:false, and the link boots again', async () => {
        const g = await newGuest();
        const r = await boot(g, rejected);
        if (r.attested !== false) return `expected success:false, got ${r.attested === true ? 'success:true' : (r.error ?? 'no answer')}`;
        const again = await boot(g);
        return again.ok ? undefined : `boot after the refusal: ${explain(again)}`;
      });
    }

    await check('a guest that vanishes after negotiation has its session closed', async () => {
      const closedBefore = counts.closed;
      const before = outcomes.length;
      const s = connect(unix);
      await once(s, 'connect');
      s.write(encodeFrame('{"version":[0,1,0],"tee":"snp"}'));
      await once(s, 'data');
      s.destroy();
      while (outcomes.length === before) await once(server, 'session');
      return counts.closed > closedBefore ? undefined : 'close() was not called for the abandoned session';
    });

    await check('every session opened was closed exactly once', async () => {
      for (const g of guests.splice(0)) g.close();
      while (server.connectionCount > 0) await once(server, 'disconnect');
      if (counts.doubleClosed > 0) return `close() called twice on ${counts.doubleClosed} sessions`;
      return counts.opened === counts.closed ? undefined : `${counts.opened} opened, ${counts.closed} closed`;
    });

    await check('the backend closes cleanly', async () => {
      await proxy?.close();
      proxy = undefined;
    });
  } finally {
    for (const g of guests) g.close();
    await proxy?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return { ok: checks.every((c) => c.ok), checks };
}

function lastDetail(outcomes: SessionOutcome[]): string {
  const d = outcomes.at(-1)?.detail;
  return d ? ` (proxy: ${d})` : '';
}

/** Wraps a definition so the harness can count session opens and closes. */
function countingDefinition(
  def: AnyBackendDefinition,
  counts: { opened: number; closed: number; doubleClosed: number },
): AnyBackendDefinition {
  return {
    ...def,
    async create(options, context) {
      const backend = await def.create(options, context);
      return {
        async openSession(info): Promise<BackendSession> {
          const session = await backend.openSession(info);
          counts.opened++;
          let closed = false;
          return {
            negotiate: (req, ctx) => session.negotiate(req, ctx),
            attest: (req, ctx) => session.attest(req, ctx),
            close: async () => {
              if (closed) counts.doubleClosed++;
              closed = true;
              counts.closed++;
              await session.close();
            },
          };
        },
        close: () => backend.close(),
      };
    },
  };
}

/** Bytes given as bytes or as hex digits; a string that is not hex, or a wrong length, is named. */
function bytesOption(name: string, value: Uint8Array | string, length?: number): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === 'string') {
    if (!/^([0-9a-fA-F]{2})*$/.test(value))
      throw new TypeError(`runConformance: ${name} must be a Uint8Array or hex digits, got ${JSON.stringify(value.slice(0, 20))}`);
    bytes = Buffer.from(value, 'hex');
  } else bytes = value;
  if (length !== undefined && bytes.length !== length)
    throw new RangeError(`runConformance: ${name} must be ${length} bytes (${length * 2} hex digits), got ${bytes.length} bytes`);
  return bytes;
}
