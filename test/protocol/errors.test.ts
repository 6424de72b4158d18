import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as errors from '../../src/protocol/errors.js';

// A second copy of the module, as a plugin that bundles its own aproxy has.
const copyUrl = new URL('../../src/protocol/errors.js?second-copy', import.meta.url).href;
const other = (await import(copyUrl)) as typeof errors;

describe('errors', () => {
  test('a second copy of the module is really another class', () => {
    assert.notEqual(other.AttestationRejectedError, errors.AttestationRejectedError);
  });

  test('instanceof and isAproxyError recognise errors from another copy of aproxy', () => {
    const foreign = new other.AttestationRejectedError('measurement not allowed');
    assert.ok(foreign instanceof errors.AttestationRejectedError);
    assert.ok(foreign instanceof errors.AproxyError);
    assert.ok(errors.isAproxyError(foreign));
    assert.equal(foreign.code, 'ATTESTATION_REJECTED');
    const ours = new errors.BackendTimeoutError('/auth', 10);
    assert.ok(ours instanceof other.BackendTimeoutError);
    assert.ok(ours instanceof other.AproxyError);
  });

  test('instanceof still tells the classes apart', () => {
    const foreign = new other.AttestationRejectedError('no');
    assert.equal(foreign instanceof errors.BackendTimeoutError, false);
    assert.equal(new Error('plain') instanceof errors.AproxyError, false);
    assert.equal(errors.isAproxyError(Object.assign(new Error('x'), { code: 'CONFIG' })), false, 'a code alone is not a brand');
  });
});
