// V8's compile cache under NODE_COMPILE_CACHE, as the shipped unit sets it:
// written while the proxy runs (after its first session, not at exit,
// which a killed proxy never reaches), and read by the next start.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { finished, spawnCli, waitForOutput } from '../../scripts/processes.js';
import { SimulatedGuest } from '../../src/testkit/guest-simulator.js';
import { startTestKbs, tempDir } from '../support/harness.js';

const skip =
  typeof (module as { flushCompileCache?: unknown }).flushCompileCache === 'function'
    ? false
    : `Node ${process.version} has no compile cache (module.flushCompileCache: Node 22 and later)`;

const files = (dir: string) =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0;

test('with NODE_COMPILE_CACHE the proxy writes the cache after its first session, without exiting, and the next start reads it', {
  skip,
}, async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'compile-cache');
  const { url, measurement } = await startTestKbs(t);
  const sock = join(dir, 'a.sock');
  const args = ['--protocol', 'kbs', '--url', url, '--unix', sock, '--log-format', 'json'];
  const first = spawnCli(args, { env: { NODE_COMPILE_CACHE: cache } });
  t.after(() => first.kill('SIGKILL'));
  await waitForOutput(first, /"msg":"aproxy ready"/);
  assert.equal(files(cache), 0, 'nothing is written before a session has loaded what sessions need');
  const guest = await SimulatedGuest.connect(sock);
  const boot = await guest.boot({ measurement });
  guest.close();
  assert.equal(boot.ok, true, boot.error);
  const [line] = await waitForOutput(first, /\{[^\n]*"msg":"compile cache written[^\n]*\}/);
  assert.ok((JSON.parse(line) as { compileCache: string }).compileCache.startsWith(cache), line);
  assert.ok(files(cache) > 0, 'the cache is on disk while the proxy still runs');
  // Killed, as by the OOM killer: what was written stays.
  first.kill('SIGKILL');
  await finished(first);

  const second = spawnCli([...args, '--force'], { env: { NODE_COMPILE_CACHE: cache, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' } });
  t.after(() => second.kill('SIGKILL'));
  await waitForOutput(second, /"msg":"aproxy ready"/);
  second.kill('SIGTERM');
  const end = await finished(second);
  assert.equal(end.code, 0);
  // Node's own account of it: the command line's code came from the cache, not the compiler.
  // (Node 22: "cache for file://…", Node 24: "V8 code cache for ESM file://…".)
  const accepted = /cache for (?:ESM )?file:\/\/\S+\/dist\/bundle\/main\.js was accepted/.exec(end.stderr);
  assert.ok(accepted, `Node's compile-cache debug output names dist/bundle/main.js as accepted (${end.stderr.length} bytes of it)`);
});
