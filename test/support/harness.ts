import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { RawBackendOptions } from '../../src/backends/contract.js';
import type { SessionOutcome } from '../../src/frontend/session.js';
import { parseStrictJson } from '../../src/protocol/json.js';
import type { ProxyConfig } from '../../src/service/config/types.js';
import { createLogger, type Logger } from '../../src/service/log.js';
import { startProxy } from '../../src/service/proxy.js';
import type { RunningProxy } from '../../src/service/running-proxy.js';
import { TestKbs, type TestKbsOptions } from '../../src/testkit/test-kbs.js';
import { FaultyKbs } from './faulty-kbs.js';

/** The first key an object of this JSON line repeats, if any. */
export function duplicateKey(line: string): string | undefined {
  try {
    parseStrictJson(line);
    return undefined;
  } catch (err) {
    return /duplicate field (.*)$/.exec((err as Error).message)?.[1];
  }
}

/** Collects log records so tests can assert on what the operator would read; a line with a duplicate key fails the test that wrote it. */
export class LogSink extends Writable {
  readonly records: Array<Record<string, unknown>> = [];
  /** Lines that repeat a key. */
  readonly duplicates: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      // Strict consumers (Elasticsearch, OpenSearch) drop such a line whole: every rig's test checks none was written.
      if (duplicateKey(line) !== undefined) this.duplicates.push(line);
      const record = JSON.parse(line) as Record<string, unknown>;
      this.records.push(record);
      this.emit('record', record);
    }
    cb();
  }
  text(): string {
    return this.records.map((r) => JSON.stringify(r)).join('\n');
  }
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'aproxy-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Rig {
  readonly kbs: TestKbs;
  readonly proxy: RunningProxy;
  readonly unix: string;
  readonly measurement: Buffer;
  readonly secret: Buffer;
  readonly logs: LogSink;
  readonly log: Logger;
  readonly kbsLines: string[];
  readonly outcomes: SessionOutcome[];
  /** Resolves once `n` session outcomes have been recorded. */
  sessions(n: number): Promise<SessionOutcome[]>;
}

/** The built-in test KBS on loopback and the proxy on a temp socket, torn down after the test. */
export async function startRig(
  t: TestContext,
  o: {
    protocol?: ProxyConfig['protocol'];
    kbs?: Partial<TestKbsOptions>;
    proxy?: Partial<ProxyConfig>;
    url?: string;
    /** Backend options besides the URL (requestTimeoutMs, caCert, …). */
    backend?: RawBackendOptions;
    /** Puts something (a faulty KBS) between the proxy and the test KBS; returns the URL the proxy uses. */
    front?: (kbsUrl: string) => Promise<string>;
  } = {},
): Promise<Rig> {
  const measurement = randomBytes(48);
  const secret = randomBytes(32);
  const kbsLines: string[] = [];
  const kbs = new TestKbs({ measurement, secret, log: (l) => kbsLines.push(l), ...o.kbs });
  const url = await kbs.start();
  t.after(() => kbs.close());
  const dir = await tempDir(t);
  const unix = join(dir, 'proxy.sock');
  const logs = new LogSink();
  const log = createLogger({ level: 'debug', destination: logs });
  const proxyUrl = o.url ?? (o.front ? await o.front(url) : url);
  // These tests boot a guest many times a second on one link, which no real
  // guest does: the session budget is given a size they never meet, unless a
  // test sets it (the budget's own tests do).
  const guestLimits = { sessionsPerMinute: 1_000_000, sessionBurst: 1_000_000 };
  const proxy = await startProxy({
    protocol: o.protocol ?? 'kbs',
    backendOptions: { url: proxyUrl, ...o.backend },
    unix,
    log,
    guestLimits,
    ...o.proxy,
  });
  t.after(async () => {
    await proxy.close();
    assert.deepEqual(logs.duplicates, [], 'no log line repeats a key');
  });
  const outcomes: SessionOutcome[] = [];
  const waiters: Array<{ n: number; resolve: (v: SessionOutcome[]) => void }> = [];
  proxy.server.on('session', (s: SessionOutcome) => {
    outcomes.push(s);
    for (const w of [...waiters]) if (outcomes.length >= w.n) w.resolve(outcomes.slice());
  });
  return {
    kbs,
    proxy,
    unix,
    measurement,
    secret,
    logs,
    log,
    kbsLines,
    outcomes,
    sessions: (n) => (outcomes.length >= n ? Promise.resolve(outcomes.slice()) : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

/** A rig whose proxy talks to the test KBS through a FaultyKbs that injects faults on command. */
export async function startFaultyRig(
  t: TestContext,
  o: { protocol?: ProxyConfig['protocol']; proxy?: Partial<ProxyConfig>; backend?: RawBackendOptions } = {},
): Promise<{ rig: Rig; kbs: FaultyKbs }> {
  let faulty: FaultyKbs | undefined;
  const rig = await startRig(t, {
    protocol: o.protocol,
    proxy: o.proxy,
    backend: o.backend,
    front: async (url) => {
      faulty = new FaultyKbs(url);
      t.after(() => faulty?.close());
      return faulty.start();
    },
  });
  return { rig, kbs: faulty as FaultyKbs };
}

/** The built-in test KBS on loopback, closed after the test. */
export async function startTestKbs(
  t: TestContext,
  o: { measurement?: Buffer; secret?: Buffer; resources?: Readonly<Record<string, Buffer>> } = {},
): Promise<{ kbs: TestKbs; url: string; measurement: Buffer; secret: Buffer }> {
  const measurement = o.measurement ?? randomBytes(48);
  const secret = o.secret ?? randomBytes(16);
  const kbs = new TestKbs({ measurement, secret, ...(o.resources === undefined ? {} : { resources: o.resources }) });
  const url = await kbs.start();
  t.after(() => kbs.close());
  return { kbs, url, measurement, secret };
}
