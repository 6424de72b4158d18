import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classify } from '../../src/frontend/session-outcome.js';
import { BackendUnreachableError, GuestGoneError, InvalidJsonError, SessionSupersededError } from '../../src/protocol/errors.js';

const live = () => ({ endedBy: undefined });
const endedWith = (reason: Error) => ({ endedBy: reason });
const answered = async () => true;
const unanswered = async () => false;
const neverCalled = async (): Promise<boolean> => assert.fail('no failure answer may be written');

describe("a session's end becomes its outcome in one place", () => {
  test('success is success', async () => {
    assert.deepEqual(await classify({ outcome: 'success' }, live(), neverCalled), { outcome: 'success' });
  });

  test('a fault the guest can be told about is a failure once the failure answer is written', async () => {
    const v = await classify({ outcome: 'stopped', stop: { cause: new InvalidJsonError('bad', 3), phase: 'negotiate' } }, live(), answered);
    assert.deepEqual(v, { outcome: 'failure', reason: 'INVALID_JSON', detail: 'invalid JSON at byte 3: bad', phase: 'negotiate' });
  });

  test('a detail given with the stop replaces the cause message', async () => {
    const v = await classify(
      {
        outcome: 'stopped',
        stop: {
          cause: new BackendUnreachableError('POST /kbs/v0/auth', 'ECONNREFUSED'),
          phase: 'negotiate',
          detail: 'backend could not open a session',
        },
      },
      live(),
      answered,
    );
    assert.equal(v.detail, 'backend could not open a session');
    assert.equal(v.reason, 'BACKEND_UNREACHABLE');
  });

  test('a guest that left or rebooted is aborted, and nothing is written to it', async () => {
    for (const cause of [new GuestGoneError(), new SessionSupersededError()]) {
      const v = await classify({ outcome: 'stopped', stop: { cause, phase: 'attest' } }, endedWith(cause), neverCalled);
      assert.equal(v.outcome, 'aborted');
      assert.equal(v.reason, cause.code);
    }
  });

  test("the session's own end reason is aborted whatever its class", async () => {
    const reason = new Error('listener retired');
    const v = await classify({ outcome: 'stopped', stop: { cause: reason, phase: 'attest' } }, endedWith(reason), neverCalled);
    assert.deepEqual([v.outcome, v.reason], ['aborted', 'INTERNAL']);
  });

  test('a failure whose answer cannot be written is aborted, with why the session ended', async () => {
    const gone = await classify(
      { outcome: 'stopped', stop: { cause: new InvalidJsonError('bad', 0), phase: 'attest' } },
      live(),
      unanswered,
    );
    assert.deepEqual([gone.outcome, gone.reason], ['aborted', 'GUEST_GONE']);
    assert.match(gone.detail ?? '', /^guest left before the failure answer \(invalid JSON/);
    const rebooted = await classify(
      { outcome: 'stopped', stop: { cause: new InvalidJsonError('bad', 0), phase: 'attest' } },
      endedWith(new SessionSupersededError()),
      unanswered,
    );
    assert.equal(rebooted.reason, 'SUPERSEDED');
  });
});
