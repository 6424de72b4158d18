// The reason-code catalogue (src/protocol/reason-codes.ts, rendered into
// docs/errors.md) is a promise to operators: for each code, when it happens
// and what the guest gets. Every code a session or a start can produce is
// provoked here, the way it happens in use, and what was seen is compared
// with what the catalogue says. The table is typed by the catalogue's
// codes, so a new code does not compile until it is provoked here.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { REPO_ROOT, runCli } from '../../scripts/processes.js';
import { type BackendSession, defineBackend } from '../../src/backends/contract.js';
import { decodeStd, encodeStd } from '../../src/protocol/base64.js';
import { encodeFrame } from '../../src/protocol/framing.js';
import { ERROR_REASONS, type ErrorCode, type GuestExperience } from '../../src/protocol/reason-codes.js';
import { type Rig, startFaultyRig, startRig, tempDir } from '../support/harness.js';
import { attestationFor, FAILURE, NEGOTIATE, type RawGuest, rawGuestFor } from '../support/raw-guest.js';

const examplePlugin = join(REPO_ROOT, 'dist', 'examples', 'local-secret-backend.js');

/** What a provocation saw: the code, and what the guest got (a session or link) or how the process ended (setup). */
type Seen =
  | { readonly code: string; readonly guest: GuestExperience }
  | { readonly code: string; readonly exit: number; readonly stderr: string };
/** Where a code is provoked when this machine cannot: a test of the named suite, which runs in a VM. */
type Elsewhere = { readonly file: string; readonly test: string };
type Provocation = ((t: TestContext) => Promise<Seen>) | Elsewhere;

/** The guest's view of its next answer: the failure answer, or its connection closed with none. */
async function answer(g: RawGuest): Promise<'failure answer' | 'link closed' | string> {
  const frame = await g.next();
  return frame === null ? 'link closed' : frame === FAILURE ? 'failure answer' : frame;
}

/** One session's end as the proxy reported it, with what the guest saw. */
async function sessionEnd(rig: Rig, guestSaw: string): Promise<Seen> {
  const [o] = await rig.sessions(1);
  assert.ok(o);
  if (o.outcome === 'failure') assert.equal(guestSaw, 'failure answer', 'a failure outcome is a failure answer sent');
  if (o.outcome === 'aborted') return { code: o.reason ?? '', guest: 'not answered' };
  return { code: o.reason ?? '', guest: guestSaw as GuestExperience };
}

/** A link the proxy closed: the code of its closing log line. */
async function linkClosed(rig: Rig, guestSaw: string): Promise<Seen> {
  const line = await linkLine(rig);
  return { code: String((line.err as { code?: unknown }).code), guest: guestSaw as GuestExperience };
}

/** The link's closing log line, once it is written. */
async function linkLine(rig: Rig): Promise<Record<string, unknown>> {
  for (;;) {
    const found = rig.logs.records.find((r) => String(r.msg).startsWith('closing guest connection'));
    if (found) return found;
    await once(rig.logs, 'record');
  }
}

/** Sends one negotiation payload on a fresh rig; the session's end. */
async function negotiation(t: TestContext, payload: string, o: Parameters<typeof startRig>[1] = {}): Promise<Seen> {
  const rig = await startRig(t, o);
  const g = await rawGuestFor(rig.unix, t);
  g.send(payload);
  return sessionEnd(rig, await answer(g));
}

/** Negotiates, then sends the AttestationRequest `attestation` makes; the session's end. */
async function attestation(rig: Rig, t: TestContext, attest: (negotiated: string) => string): Promise<Seen> {
  const g = await rawGuestFor(rig.unix, t);
  g.send(NEGOTIATE);
  const neg = (await g.next()) ?? '';
  assert.ok(neg.startsWith('{"challenge"'), neg);
  g.send(attest(neg));
  return sessionEnd(rig, await answer(g));
}

/** A proxy process started with `args`: its exit code and stderr. */
async function start(args: string[]): Promise<Seen> {
  const r = await runCli([...(args.includes('--protocol') ? [] : ['--protocol', 'kbs']), '--url', 'http://127.0.0.1:1', ...args]);
  return { code: /\[([A-Z_]+)\]\s*$/.exec(r.stderr)?.[1] ?? r.stderr, exit: r.code ?? -1, stderr: r.stderr };
}

/** A backend plugin whose sessions negotiate with `negotiate` (and never get further). */
function negotiatingWith(name: string, negotiate: BackendSession['negotiate']) {
  return defineBackend({
    apiVersion: 2,
    name,
    create: () => ({
      openSession: () => ({ negotiate, attest: async () => ({ success: false }), close: () => undefined }),
      close: async () => undefined,
    }),
  });
}

/** An AttestationRequest whose challenge is not base64. */
async function badBase64Challenge(t: TestContext): Promise<Seen> {
  const rig = await startRig(t);
  return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg, (j) => (j.challenge = 'not base64!')));
}

/** The example plugin with a policy that allows `measurement`. */
async function exampleRig(t: TestContext, measurement: Buffer): Promise<Rig> {
  const policy = join(await tempDir(t), 'policy.json');
  await writeFile(policy, JSON.stringify({ measurements: [measurement.toString('hex')], secret: '00' }));
  return startRig(t, { protocol: examplePlugin, proxy: { backendOptions: { policy } } });
}

const PROVOKED: { readonly [C in ErrorCode]: Provocation | null } = {
  FRAME_TOO_LARGE: async (t) => {
    const rig = await startRig(t);
    const g = await rawGuestFor(rig.unix, t);
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(2n ** 40n);
    g.write(header);
    return linkClosed(rig, await answer(g));
  },
  FRAME_TRUNCATED: async (t) => {
    const rig = await startRig(t);
    const g = await rawGuestFor(rig.unix, t);
    g.write(encodeFrame(NEGOTIATE).subarray(0, 12));
    g.end();
    return linkClosed(rig, await answer(g));
  },
  FRAME_TIMEOUT: async (t) => {
    const rig = await startRig(t, { proxy: { frameTimeoutMs: 100 } });
    const g = await rawGuestFor(rig.unix, t);
    g.write(encodeFrame(NEGOTIATE).subarray(0, 12));
    return linkClosed(rig, await answer(g));
  },
  INVALID_JSON: (t) => negotiation(t, '{"version":[0,1,0],"tee":'),
  INVALID_MESSAGE: (t) => negotiation(t, '{"version":[0,1,0]}'),
  // No session ends with it (the entry says so): a guest's bad base64 is INVALID_MESSAGE, and the tools' decoder raises it.
  INVALID_BASE64: null,
  UNSUPPORTED_VERSION: (t) => negotiation(t, '{"version":[1,0,0],"tee":"snp"}'),
  UNSUPPORTED_TEE: (t) => negotiation(t, '{"version":[0,1,0],"tee":"tdx"}'),
  OUT_OF_ORDER: async (t) => {
    const rig = await startRig(t);
    return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg, (j) => (j.tee = 'sev')));
  },
  CHALLENGE_MISMATCH: async (t) => {
    const rig = await startRig(t);
    return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg, (j) => (j.challenge = encodeStd(new Uint8Array(32)))));
  },
  INVALID_REPORT: async (t) => {
    const measurement = Buffer.alloc(48, 0x5a);
    const rig = await exampleRig(t, measurement);
    const short = encodeStd(new Uint8Array(100));
    return attestation(rig, t, (neg) =>
      attestationFor(measurement, neg, (j) => ((j.evidence as { Snp: { report: string } }).Snp.report = short)),
    );
  },
  CRYPTO: async (t) => {
    const measurement = Buffer.alloc(48, 0x5a);
    const rig = await exampleRig(t, measurement);
    // Bound by the report like any key, but not a point on P-521: sealing the secret to it fails.
    const notOnCurve = { x: new Uint8Array(66).fill(1), y: new Uint8Array(66).fill(2) };
    return attestation(rig, t, (neg) => attestationFor(measurement, neg, undefined, notOnCurve));
  },
  BACKEND_HTTP: async (t) => {
    const { rig, kbs } = await startFaultyRig(t);
    kbs.inject('attest', { kind: 'status', status: 503 });
    return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg));
  },
  BACKEND_PROTOCOL: async (t) => {
    const { rig, kbs } = await startFaultyRig(t);
    kbs.inject('attest', { kind: 'garbage' });
    return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg));
  },
  BACKEND_UNREACHABLE: async (t) => {
    // A port nothing listens on; no /auth retries, which are the budget's own tests.
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const { port } = closed.address() as { port: number };
    closed.close();
    return negotiation(t, NEGOTIATE, { url: `http://127.0.0.1:${port}`, backend: { authRetryBudgetMs: 0 } });
  },
  BACKEND_TIMEOUT: async (t) => {
    const { rig, kbs } = await startFaultyRig(t, { backend: { requestTimeoutMs: 200 } });
    kbs.inject('attest', { kind: 'hang' });
    return attestation(rig, t, (neg) => attestationFor(rig.measurement, neg));
  },
  ATTESTATION_REJECTED: async (t) => {
    const rig = await startRig(t);
    return attestation(rig, t, (neg) => attestationFor(Buffer.alloc(48, 7), neg));
  },
  GUEST_GONE: async (t) => {
    const rig = await startRig(t);
    const g = await rawGuestFor(rig.unix, t);
    g.send(NEGOTIATE);
    assert.ok(await g.next());
    g.destroy();
    return sessionEnd(rig, 'gone');
  },
  SUPERSEDED: async (t) => {
    const rig = await startRig(t);
    const g = await rawGuestFor(rig.unix, t);
    g.send(NEGOTIATE);
    assert.ok(await g.next());
    // A reboot: a new NegotiationRequest while the old session waits for its AttestationRequest.
    g.send(NEGOTIATE);
    const next = (await g.next()) ?? '';
    assert.ok(next.startsWith('{"challenge"'), 'the next frame answers the new session; the old one got nothing');
    return sessionEnd(rig, 'superseded');
  },
  SHUTDOWN: async (t) => {
    let started: () => void = () => undefined;
    const negotiating = new Promise<void>((r) => {
      started = r;
    });
    const hanging = negotiatingWith('hanging', () => {
      started();
      return new Promise<never>(() => undefined);
    });
    const rig = await startRig(t, { protocol: hanging, proxy: { backendOptions: {} } });
    const g = await rawGuestFor(rig.unix, t);
    g.send(NEGOTIATE);
    await negotiating;
    // A stop whose grace (50 ms) ends long before this session would.
    const stopped = rig.proxy.close(50);
    const saw = await answer(g);
    await stopped;
    assert.equal(saw, 'link closed');
    return sessionEnd(rig, saw);
  },
  PLUGIN_INVALID: async (t) => start(['--protocol', join(await tempDir(t), 'missing.js'), '--unix', join(await tempDir(t), 's')]),
  // A backend that answers the negotiation with the wrong shape breaks the contract.
  PLUGIN_FAULT: (t) =>
    negotiation(t, NEGOTIATE, { protocol: negotiatingWith('broken', async () => ({ challenge: 'not bytes' }) as never) }),
  SOCKET_IN_USE: async (t) => {
    const path = join(await tempDir(t), 'vm.sock');
    const live = createServer().listen(path);
    await once(live, 'listening');
    t.after(() => live.close());
    return start(['--unix', path]);
  },
  SOCKET_PATH: async (t) => start(['--unix', join(await tempDir(t), 'no-such-directory', 'vm.sock')]),
  CONFIG: async (t) => start(['--unix', join(await tempDir(t), 's'), '--max-frame-bytes', '0']),
  VSOCK_UNAVAILABLE: { file: 'test/vsock/in-vm.suite.ts', test: 'a vsock port already bound is a clear start-up error' },
  // An error without a code: a backend that throws a plain Error.
  INTERNAL: (t) =>
    negotiation(t, NEGOTIATE, {
      protocol: negotiatingWith('plain-error', async () => {
        throw new Error('database is locked');
      }),
    }),
};

describe('every reason code does what docs/errors.md says', () => {
  for (const code of Object.keys(PROVOKED) as ErrorCode[]) {
    const reason = ERROR_REASONS[code];
    const provoke = PROVOKED[code];
    if (provoke === null) {
      test(`${code}: no session or start ends with it, as its entry says; the tool names it`, async (t) => {
        assert.equal('guest' in reason, false);
        assert.match(reason.when, /no session ends with this code/);
        assert.throws(() => decodeStd('not base64!'), { code });
        const tool = await runCli(['inspect-token', 'eyJhbGciOiJub25lIn0.ab!c.sig']);
        assert.equal(tool.code, 1);
        assert.match(tool.stderr, /JWT claims is not base64url JSON: invalid character for unpadded base64url at offset 2/);
        // A guest's message with a bad base64 field: INVALID_MESSAGE, as the entry says.
        assert.deepEqual(await badBase64Challenge(t), { code: 'INVALID_MESSAGE', guest: 'failure answer' });
      });
      continue;
    }
    if (typeof provoke !== 'function') {
      test(`${code}: provoked in ${provoke.file}`, async () => {
        const source = await readFile(join(REPO_ROOT, provoke.file), 'utf8');
        assert.ok(source.includes(`'${provoke.test}'`), `${provoke.file} has the test "${provoke.test}"`);
        assert.ok(source.includes(`\\[${code}\\]`), `and it checks the code ${code}`);
      });
      continue;
    }
    const expected = 'guest' in reason ? `the guest gets ${reason.guest}` : 'exit code 2';
    test(`${code}: ${expected}`, async (t) => {
      const seen = await provoke(t);
      assert.equal(seen.code, code, JSON.stringify(seen));
      if ('exit' in seen) {
        assert.equal(reason.area, 'setup', 'only configuration and host problems stop a start');
        assert.equal(seen.exit, 2, seen.stderr);
        assert.equal(seen.stderr.trim().split('\n').length, 1, 'one line');
      } else {
        assert.equal(seen.guest, (reason as { guest?: string }).guest);
      }
    });
  }
});
