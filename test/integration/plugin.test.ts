import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { resolveBackend } from '../../src/backends/registry.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startRig, tempDir } from '../support/harness.js';

const examplePlugin = join(REPO_ROOT, 'dist', 'examples', 'local-secret-backend.js');

describe('backend plugins loaded by path', () => {
  test('the example plugin serves a guest end to end', async (t) => {
    const dir = await tempDir(t);
    const policy = join(dir, 'policy.json');
    const rig = await startRig(t, { protocol: examplePlugin, proxy: { backendOptions: { policy } } }).catch(async () => undefined);
    assert.equal(rig, undefined, 'policy file does not exist yet, so create() must fail');
    const measurement = Buffer.alloc(48, 0x5a);
    const secret = Buffer.from('plugin secret');
    await writeFile(policy, JSON.stringify({ measurements: [measurement.toString('hex')], secret: secret.toString('hex') }));
    const rig2 = await startRig(t, { protocol: examplePlugin, proxy: { backendOptions: { policy } } });
    assert.equal(rig2.proxy.backendName, 'local-secret');
    const guest = await SimulatedGuest.connect(rig2.unix);
    t.after(() => guest.close());
    const ok = await guest.boot({ measurement, expectSecret: secret });
    assert.equal(ok.secretMatches, true);
    const refused = await guest.boot({ measurement: Buffer.alloc(48, 1) });
    assert.equal(refused.attested, false);
    const outcomes = await rig2.sessions(2);
    assert.match(outcomes[1]?.detail ?? '', /not allow-listed/);
  });

  test('a plugin anywhere on the host, outside any node_modules, imports aproxy/… from the aproxy that loads it and serves a guest', async (t) => {
    const dir = await tempDir(t);
    // As an operator deploys one: the example copied to a directory of its own, run by the CLI.
    const plugin = join(dir, 'backends', 'local-secret-backend.js');
    await mkdir(join(dir, 'backends'));
    await copyFile(examplePlugin, plugin);
    const measurement = Buffer.alloc(48, 0x6b);
    const secret = Buffer.from('deployed plugin secret');
    const policy = join(dir, 'policy.json');
    await writeFile(policy, JSON.stringify({ measurements: [measurement.toString('hex')], secret: secret.toString('hex') }));
    const unix = join(dir, 'proxy.sock');
    const proc = spawnCli(['--protocol', plugin, '--backend-option', `policy=${policy}`, '--unix', unix, '--log-format', 'json']);
    t.after(() => proc.kill('SIGKILL'));
    await waitForOutput(proc, /"msg":"aproxy ready"/);
    const guest = await SimulatedGuest.connect(unix);
    t.after(() => guest.close());
    assert.equal((await guest.boot({ measurement, expectSecret: secret })).secretMatches, true);
  });

  test('a module without a backend export is refused with a coded error', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'nothing.mjs');
    await writeFile(file, 'export const x = 1;\n');
    await assert.rejects(resolveBackend(file), { code: 'PLUGIN_INVALID', message: /must export a backend definition/ });
  });

  test('a plugin declaring another API version is refused', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'future.mjs');
    await writeFile(file, 'export default { apiVersion: 3, name: "future", create() {} };\n');
    await assert.rejects(resolveBackend(file), { code: 'PLUGIN_INVALID', message: /apiVersion 3, this aproxy speaks 2/ });
  });

  test('the example plugin names a missing or unknown option before anything starts', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(startRig(t, { protocol: examplePlugin, proxy: { backendOptions: {} } }), { code: 'CONFIG', message: /policy=/ });
    await assert.rejects(startRig(t, { protocol: examplePlugin, proxy: { backendOptions: { policy: join(dir, 'p.json'), polcy: 'x' } } }), {
      code: 'CONFIG',
      message: /polcy/,
    });
  });

  test('an unknown name that is not a path lists the built-ins', async () => {
    await assert.rejects(resolveBackend('nope'), { code: 'PLUGIN_INVALID', message: /kbs, kbs-test/ });
  });

  test('a path that does not exist is refused with the loader message', async () => {
    await assert.rejects(resolveBackend('./does-not-exist.js'), { code: 'PLUGIN_INVALID', message: /cannot be loaded/ });
  });
});
