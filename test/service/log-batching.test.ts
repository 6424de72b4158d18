// Stdout log lines are written in batches (service/log.ts): none may be lost
// on the way out, and a quiet log still reaches stdout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';

const LOG_MODULE = new URL('../../src/service/log.js', import.meta.url).href;

/** A process that logs `lines` lines with the proxy's stdout logger, then does `then`. */
function logger(lines: number, then: string, format: 'json' | 'pretty' = 'json') {
  const script = `import { createLogger, exitAfterLog } from ${JSON.stringify(LOG_MODULE)};
const log = createLogger({ format: '${format}' });
for (let i = 0; i < ${lines}; i++) log.info({ i }, 'line');
${then}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const numbers = () => out.split('\n').flatMap((l) => (l === '' ? [] : [(JSON.parse(l) as { i: number }).i]));
  return { child, exited, numbers, output: () => out };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

test('process.exit right after logging: every line is written, in order', async () => {
  const p = logger(500, 'process.exit(3);');
  assert.deepEqual(await p.exited, [3, null]);
  assert.deepEqual(p.numbers(), upTo(500));
});

test('an uncaught exception right after logging: every line is written before the process dies', async () => {
  const p = logger(3, "setImmediate(() => { throw new Error('fault'); });");
  assert.deepEqual(await p.exited, [1, null]);
  assert.deepEqual(p.numbers(), upTo(3));
});

test('exitAfterLog: the lines below a batch are written, then the process exits with the code', async () => {
  const p = logger(2, 'exitAfterLog(log, 4);');
  assert.deepEqual(await p.exited, [4, null]);
  assert.deepEqual(p.numbers(), upTo(2));
});

test('a single line of a quiet process reaches stdout while it runs', async (t) => {
  const p = logger(1, 'setInterval(() => {}, 1000);');
  t.after(() => p.child.kill('SIGKILL'));
  while (!p.output().endsWith('\n')) await once(p.child.stdout, 'data');
  assert.deepEqual(p.numbers(), [0]);
  assert.equal(p.child.exitCode, null, 'written by the running process, not at its exit');
});

test('a single pretty line of a quiet process reaches stdout while it runs', async (t) => {
  const p = logger(1, 'setInterval(() => {}, 1000);', 'pretty');
  t.after(() => p.child.kill('SIGKILL'));
  while (!p.output().endsWith('\n')) await once(p.child.stdout, 'data');
  assert.match(p.output(), /^\S+ INFO +line +i=0\n$/);
  assert.equal(p.child.exitCode, null);
});
