// `npm run soak`, at a small size, as the docs tell an operator to run it:
// it must finish by itself, pass, and leave nothing in the temporary directory.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { finished, REPO_ROOT, spawnNode } from '../../scripts/processes.js';

test('the soak runs misbehaving and well-behaved guests to the end, passes, and cleans up after itself', async () => {
  const soak = spawnNode(
    join(REPO_ROOT, 'dist', 'scripts', 'soak.js'),
    ['--sessions', '120', '--concurrency', '8', '--max-seconds', '100'],
    {
      nodeOptions: ['--expose-gc'],
    },
  );
  const r = await finished(soak);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^soak: 120 sessions \(\d+ well-behaved, \d+ misbehaving or refused\) at concurrency 8/m);
  assert.match(r.stdout, /^OK: no leaked handles, every well-behaved guest got its secret$/m);
  const dir = /^soak: working in (.+)$/m.exec(r.stdout)?.[1];
  assert.ok(dir !== undefined && !existsSync(dir), `its directory ${dir} is gone`);
});
