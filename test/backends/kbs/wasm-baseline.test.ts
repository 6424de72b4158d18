// V8 moves a hot WebAssembly function to its optimising compiler; opening
// the KBS client's pool keeps wasm on the baseline compiler before undici
// compiles llhttp at its first connection (src/backends/kbs/wasm-baseline.ts).
// Shown on a small wasm loop compiled after the pool opens, in a child Node
// with V8's natives syntax, which counts the rounds of calls until the loop
// is optimised.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../../scripts/processes.js';
import { WASM_BASELINE_FLAGS } from '../../../src/backends/kbs/wasm-baseline.js';

const httpPool = new URL('../../../src/backends/kbs/http-pool.js', import.meta.url).href;

// (func (export "f") (param $n i32) (result i32) (local $acc i32)
//   (loop (local.set $acc (i32.add (local.get $acc) (local.get $n)))
//         (br_if 0 (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
//   (local.get $acc))
const LOOP_MODULE = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 27, 1, 25, 1, 1, 127, 3, 64, 32, 1, 32,
  0, 106, 33, 1, 32, 0, 65, 1, 107, 34, 0, 13, 0, 11, 32, 1, 11,
];

// A round is a million iterations of the loop, more than Node's default
// tiering budget on every line; V8's largest budget lasts 45–75 rounds.
const ROUNDS = 200;
const child = `
if (process.argv[1] === 'pool') {
  const { openHttpPool } = await import(${JSON.stringify(httpPool)});
  await (await openHttpPool('http://127.0.0.1:1', {})).close();
}
const f = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(LOOP_MODULE)}))).exports.f;
let rounds = 0;
while (!%IsTurboFanFunction(f) && rounds < ${ROUNDS}) {
  for (let i = 0; i < 1000; i++) f(1000);
  rounds++;
  await new Promise((resolve) => setImmediate(resolve));
}
console.log(JSON.stringify({ rounds, optimised: %IsTurboFanFunction(f), sum: f(10) }));
`;

function roundsToOptimise(openPool: boolean): { rounds: number; optimised: boolean; sum: number } {
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', child, openPool ? 'pool' : 'none'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // V8 names a flag it does not know on stderr and carries on.
  assert.equal(run.stderr, '');
  assert.equal(run.status, 0);
  return JSON.parse(run.stdout) as { rounds: number; optimised: boolean; sum: number };
}

test('without the pool, a hot wasm loop is optimised within a few rounds', () => {
  const plain = roundsToOptimise(false);
  assert.equal(plain.sum, 55);
  assert.ok(plain.optimised, 'this Node optimises hot WebAssembly');
  assert.ok(plain.rounds < 20, `optimised after ${plain.rounds} rounds`);
});

test('once the KBS pool is open, the same loop stays on the baseline compiler', () => {
  const kept = roundsToOptimise(true);
  assert.equal(kept.sum, 55);
  assert.deepEqual([kept.rounds, kept.optimised], [ROUNDS, false]);
});

test('the guide for backend authors names the flags the pool sets', () => {
  assert.ok(readFileSync(join(REPO_ROOT, 'docs', 'backends.md'), 'utf8').includes(`\`${WASM_BASELINE_FLAGS}\``));
});
