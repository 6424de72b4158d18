// Compile-time check of the option table: an option's target names a key
// of the type its value lands in, so `npm test`'s type check refuses a
// misspelt one instead of the option being silently dropped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OPTION_NAMES, OPTIONS, type OptionSpec } from '../../src/service/config/options.js';

const spelt = { type: 'integer', help: '', to: { proxy: 'maxFrameBytes' }, reload: true, group: 'guests' } as const satisfies OptionSpec;

const misspelt = {
  type: 'integer',
  help: '',
  // @ts-expect-error `maxFrameByte` is not a key of ProxyConfig
  to: { proxy: 'maxFrameByte' },
  reload: true,
  group: 'guests',
} as const satisfies OptionSpec;

const wrongRoom = {
  type: 'integer',
  help: '',
  // @ts-expect-error `logLevel` is a process option, not a guest limit
  to: { limits: 'logLevel' },
  reload: false,
  group: 'guests',
} as const satisfies OptionSpec;

test('the option table and the type checks above compile; every target names a place', () => {
  assert.equal(spelt.to.proxy, 'maxFrameBytes');
  assert.ok(misspelt && wrongRoom);
  for (const name of OPTION_NAMES) {
    const to: OptionSpec['to'] = OPTIONS[name].to;
    assert.ok(to === 'backend-options' || Object.keys(to).length === 1, name);
  }
});
