import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';

// Loads a module in a fresh process, recording every module it resolves.
// Which modules load is the import budget; how long they take is the
// benchmark's business, not a test's.
const probe = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
let flushed;
port1.on('message', (m) => (typeof m === 'string' ? seen.push(m) : flushed()));
register('data:text/javascript,' + encodeURIComponent(\`
  let port;
  export function initialize(data) { port = data.port; port.on('message', () => port.postMessage({ flushed: true })); port.unref(); }
  export async function resolve(spec, ctx, next) { const r = await next(spec, ctx); port.postMessage(r.url); return r; }
\`), { data: { port: port2 }, transferList: [port2] });
await import(process.argv[1]);
// One port keeps order: once the loader answers this, every resolution it posted has arrived.
await new Promise((r) => { flushed = r; port1.postMessage('flush'); });
port1.close();
console.log(JSON.stringify({ seen }));
`;

function load(specifier: string): { seen: string[] } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe, specifier], { cwd: REPO_ROOT, encoding: 'utf8' });
  return JSON.parse(out) as { seen: string[] };
}

test('aproxy/plugin loads no schema library, HTTP client, logger or metrics', () => {
  const { seen } = load('aproxy/plugin');
  const heavy = seen.filter((u) => /node_modules\/(zod|undici|pino|prom-client|yargs)\//.test(u));
  assert.deepEqual(heavy, [], `aproxy/plugin pulled in: ${heavy.join(', ')}`);
  assert.ok(
    seen.some((u) => u.endsWith('/dist/src/plugin.js')),
    'the probe saw the surface itself load',
  );
});

test('the command line loads no schema library, HTTP client or argument parser before it binds', () => {
  // What the CLI imports up to startProxy(): the rest loads after the sockets are up (service/proxy.ts),
  // and yargs only for what is not a plain start (cli/serve-argv.ts).
  const { seen } = load('./dist/src/cli/main.js');
  const heavy = seen.filter(
    (u) =>
      /node_modules\/(zod|undici|prom-client|yargs)\//.test(u) ||
      /\/dist\/src\/(frontend\/(server|session)|backends\/kbs\/client)\.js$/.test(u),
  );
  assert.deepEqual(heavy, [], `the CLI entry pulled in: ${heavy.join(', ')}`);
  assert.ok(
    seen.some((u) => u.endsWith('/dist/src/service/config/options.js')),
    'the probe saw the option table load',
  );
});

test('the bundled command line bin/aproxy runs loads no schema library, HTTP client or argument parser before it binds', () => {
  // The same budget for dist/bundle (scripts/bundle.mjs): which sources each loaded file holds is in the bundle's metafile.
  const { seen } = load('./dist/bundle/main.js');
  const meta = JSON.parse(readFileSync(join(REPO_ROOT, 'dist', 'bundle', 'meta.json'), 'utf8')) as {
    outputs: Record<string, { inputs: Record<string, unknown> }>;
  };
  const loaded = seen.filter((u) => u.includes('/dist/bundle/')).map((u) => `dist/bundle/${u.split('/dist/bundle/')[1]}`);
  const sources = loaded.flatMap((f) => Object.keys(meta.outputs[f]?.inputs ?? {}));
  const heavy = sources.filter(
    (u) =>
      /node_modules\/(zod|undici|prom-client|yargs)\//.test(u) ||
      /dist\/src\/(frontend\/(server|session)|backends\/kbs\/client)\.js$/.test(u),
  );
  assert.deepEqual(heavy, [], `the bundled CLI entry pulled in: ${heavy.join(', ')}`);
  assert.ok(sources.includes('dist/src/service/config/options.js'), 'the probe saw the option table load');
  assert.ok(
    Object.values(meta.outputs).some((o) => Object.keys(o.inputs).some((i) => i.includes('node_modules/undici/'))),
    'undici is in the bundle, loaded later',
  );
});
