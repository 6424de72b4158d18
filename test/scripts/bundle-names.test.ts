// The build's guard against esbuild renaming one of our classes
// (scripts/bundle-names.ts, run by scripts/bundle.mjs on every build).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classNamesIn, renamedClasses } from '../../scripts/bundle-names.js';

const ours = classNamesIn(['export class GuestGoneError extends AproxyError {}', 'class SessionSlot {\n}', 'export class Vec3 {}']);

test('our class names are read from the compiled sources', () => {
  assert.deepEqual([...ours].sort(), ['GuestGoneError', 'SessionSlot', 'Vec3']);
});

test('a class of ours renamed in either form esbuild writes is reported; its own name, a digit in a name of ours and other code are not', () => {
  assert.deepEqual(renamedClasses(ours, 'var GuestGoneError2 = class extends AproxyError {'), ['GuestGoneError → GuestGoneError2']);
  assert.deepEqual(renamedClasses(ours, 'class SessionSlot3 {\n  end() {}\n}'), ['SessionSlot → SessionSlot3']);
  assert.deepEqual(renamedClasses(ours, 'var GuestGoneError = class extends AproxyError {}; class Vec3 {}'), []);
  assert.deepEqual(renamedClasses(ours, 'var Pool2 = class extends PoolBase {}; function describe2(v) {}'), []);
});
