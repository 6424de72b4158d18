import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';
import { defineBackend } from '../../src/backends/contract.js';
import { NEGOTIATION_PARAMS } from '../../src/protocol/index.js';
import { runConformance } from '../../src/testkit/conformance.js';
import { startTestKbs, tempDir } from '../support/harness.js';

const examplePlugin = join(REPO_ROOT, 'dist', 'examples', 'local-secret-backend.js');

describe('conformance helper for backend authors', () => {
  test('the built-in kbs backend passes every check against the test KBS', async (t) => {
    const measurement = randomBytes(48);
    const secret = randomBytes(32);
    const { url } = await startTestKbs(t, { measurement, secret });
    const report = await runConformance({
      backend: 'kbs',
      backendOptions: { url },
      measurement,
      expectSecret: secret,
      rejectedMeasurement: randomBytes(48),
    });
    assert.deepEqual(
      report.checks.filter((c) => !c.ok),
      [],
    );
    assert.equal(report.ok, true);
    assert.equal(report.checks.length, 9);
  });

  test('the example plugin, loaded by path, passes; measurements and secrets may be given as hex, as its policy file holds them', async (t) => {
    const dir = await tempDir(t);
    const measurement = randomBytes(48);
    const secret = randomBytes(16);
    const policy = join(dir, 'policy.json');
    await writeFile(policy, JSON.stringify({ measurements: [measurement.toString('hex')], secret: secret.toString('hex') }));
    const report = await runConformance({
      backend: examplePlugin,
      backendOptions: { policy },
      measurement: measurement.toString('hex'),
      expectSecret: secret.toString('hex'),
      rejectedMeasurement: randomBytes(48).toString('hex'),
    });
    assert.equal(report.ok, true, JSON.stringify(report.checks));
    await assert.rejects(
      runConformance({ backend: examplePlugin, backendOptions: { policy }, measurement: measurement.toString('hex').slice(2) }),
      /runConformance: measurement must be 48 bytes \(96 hex digits\), got 47 bytes/,
    );
    await assert.rejects(
      runConformance({ backend: examplePlugin, backendOptions: { policy }, measurement: 'zz' }),
      /runConformance: measurement must be a Uint8Array or hex digits/,
    );
  });

  test('a backend whose secret does not decrypt is reported, check by check', async () => {
    const broken = defineBackend({
      apiVersion: 2,
      name: 'broken',
      create: () => ({
        openSession: () => ({
          negotiate: async () => ({ challenge: randomBytes(32), params: [...NEGOTIATION_PARAMS] }),
          attest: async (req) => ({
            success: true,
            secret: randomBytes(16),
            decryption: { epk: req.key, wrapped_cek: randomBytes(40), aad: randomBytes(8), iv: randomBytes(12), tag: randomBytes(16) },
            token: { tag: 'Jwt', value: 'x' },
          }),
          close() {},
        }),
        close: async () => undefined,
      }),
    });
    const report = await runConformance({
      backend: broken,
      backendOptions: {},
      measurement: randomBytes(48),
      rejectedMeasurement: randomBytes(48),
    });
    assert.equal(report.ok, false);
    const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
    assert.ok(failed.includes('a guest attests and decrypts its secret'));
    assert.ok(failed.some((n) => /refused measurement/.test(n)));
    const decrypt = report.checks.find((c) => c.name === 'a guest attests and decrypts its secret');
    assert.match(decrypt?.detail ?? '', /unwrap|decrypt|curve/i);
    // Lifecycle checks still hold: the proxy closed every session.
    assert.ok(report.checks.find((c) => c.name === 'every session opened was closed exactly once')?.ok);
  });

  test('a module that is not a backend fails the first check and stops', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'x.mjs');
    await writeFile(file, 'export default 42;\n');
    const report = await runConformance({ backend: file, backendOptions: {}, measurement: randomBytes(48) });
    assert.equal(report.ok, false);
    assert.equal(report.checks.length, 1);
    assert.match(report.checks[0]?.detail ?? '', /PLUGIN|must export/);
  });
});
