import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { faultOrigin } from '../../src/service/faults.js';

const thrown = (...frames: string[]) =>
  Object.assign(new Error('x'), { stack: ['Error: x', ...frames.map((f) => `    at ${f}`)].join('\n') });
const ours = join(PACKAGE_ROOT, 'dist', 'src', 'protocol', 'snp-report.js');

test("a fault's origin is the first frame outside aproxy and Node: a plugin's file, or none", () => {
  assert.equal(
    faultOrigin(thrown(`parse (${ours}:3:9)`, 'listOnTimeout (node:internal/timers:581:17)')),
    undefined,
    'Node internals are no plugin',
  );
  assert.equal(faultOrigin(thrown(`parse (${ours}:3:9)`, 'negotiate (file:///srv/plugins/p.mjs:4:2)')), '/srv/plugins/p.mjs');
  assert.equal(faultOrigin(thrown('/srv/plugins/q.js:1:1')), '/srv/plugins/q.js');
  assert.equal(faultOrigin(thrown('async Promise.all (index 0)')), undefined);
});
