import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, renderCliDoc, renderErrorsDoc, renderMetricsDoc } from '../../scripts/docs.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';
import { OPTION_NAMES } from '../../src/service/config/options.js';

const committed = (name: string) => readFileSync(join(ROOT, 'docs', name), 'utf8');

test('docs/cli.md is what the option table renders (run `npm run docs` after changing an option)', () => {
  assert.equal(committed('cli.md'), renderCliDoc());
  for (const name of OPTION_NAMES) assert.ok(committed('cli.md').includes(`| \`${name}\``), name);
});

test('docs/metrics.md lists every metric a proxy registers (run `npm run docs` after changing one)', async () => {
  assert.equal(committed('metrics.md'), await renderMetricsDoc());
  assert.match(committed('metrics.md'), /\| `aproxy_sessions_total` \| counter \| `outcome`, `reason`, `transport`, `listener` \|/);
});

test('docs/errors.md lists every reason code, as the catalogue renders it (run `npm run docs`)', () => {
  const doc = committed('errors.md');
  const missing = ERROR_CODES.filter((code) => !doc.includes(`| \`${code}\` |`));
  assert.deepEqual(missing, [], `codes missing from docs/errors.md: ${missing.join(', ')}`);
  assert.equal(doc, renderErrorsDoc());
});
