// npm run bench:startup (and its table in npm run bench) keeps working:
// one trial each of aproxy and the bare relay, from an empty compile cache
// and from the one that start wrote, each serving its first guest.
// Figures are printed by the script, never asserted here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureStartup, startupTable } from '../../scripts/startup-bench.js';
import { startTestKbs } from '../support/harness.js';

test('the start-up benchmark serves a first guest through aproxy and through the relay, warm and cold, and prints its table', async (t) => {
  const { url, measurement, kbs } = await startTestKbs(t);
  const row = await measureStartup(url, measurement, 1);
  assert.equal(kbs.stats.released, 4, 'each process served its first guest its secret, from an empty cache and a written one');
  for (const side of [row.aproxy, row.relay, row.aproxyEmptyCache, row.relayEmptyCache]) {
    assert.ok(side.firstGuestMs > 0 && side.cpuMs > 0 && side.rssMiB > 0, JSON.stringify(side));
  }
  const lines = startupTable(row).split('\n');
  assert.equal(lines.length, 8);
  assert.match(lines[0] ?? '', row.compileCache ? /NODE_COMPILE_CACHE as the previous start left it/ : /this Node has no compile cache/);
  assert.match(lines[3] ?? '', /^\| spawn → the first guest holds its secret \| \d+ ms \| \d+ ms \| \d+\.\d\d× \|$/);
  assert.match(
    lines[6] ?? '',
    /^\| the same from an empty compile cache \(first start of a version\) \| \d+ ms \| \d+ ms \| \d+\.\d\d× \|$/,
  );
});
