import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// Loads a surface in a fresh process, recording every module it resolves
// and how long the import took.
const probe = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
port1.on('message', (u) => seen.push(u));
register('data:text/javascript,' + encodeURIComponent(\`
  let port;
  export function initialize(data) { port = data.port; }
  export async function resolve(spec, ctx, next) { const r = await next(spec, ctx); port.postMessage(r.url); return r; }
\`), { data: { port: port2 }, transferList: [port2] });
const t = performance.now();
await import(process.argv[1]);
const ms = performance.now() - t;
await new Promise((r) => setTimeout(r, 50));
port1.close();
console.log(JSON.stringify({ ms, seen }));
`;

function load(specifier: string): { ms: number; seen: string[] } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe, specifier], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out) as { ms: number; seen: string[] };
}

test('aproxy/plugin loads no schema library, curve arithmetic, HTTP client, logger or metrics', () => {
  const { seen } = load('aproxy/plugin');
  const heavy = seen.filter((u) => /node_modules\/(zod|@noble\/curves|undici|pino|prom-client|yargs)\//.test(u));
  assert.deepEqual(heavy, [], `aproxy/plugin pulled in: ${heavy.join(', ')}`);
  assert.ok(seen.some((u) => u.endsWith('/dist/src/plugin.js')), 'the probe saw the surface itself load');
});

test('aproxy/plugin costs under 30 ms to import (best of seven fresh processes, beyond what any first import costs)', () => {
  // The loader's own start-up (~9 ms here for an empty module) is the same for every import; what is measured is the surface.
  const best = (specifier: string) => Math.min(...Array.from({ length: 7 }, () => load(specifier).ms));
  const empty = best('data:text/javascript,export{}');
  const plugin = best('aproxy/plugin');
  assert.ok(plugin - empty < 30, `aproxy/plugin took ${plugin.toFixed(1)} ms to import, an empty module ${empty.toFixed(1)} ms`);
});
