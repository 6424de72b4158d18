import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestLimits } from '../../src/frontend/guest-limits.js';
import type { GuestPeer } from '../../src/frontend/transport.js';

const limits = (o: Partial<ConstructorParameters<typeof GuestLimits>[0]> = {}) =>
  new GuestLimits({ maxPerCid: 2, maxTotal: 5, sessionsPerMinute: 3, trustedCids: new Set([1]), ...o });
const guest = (cid: number): GuestPeer => ({ transport: 'vsock', listener: 'vsock:1995', cid });

describe('vsock guest limits', () => {
  test('a CID over its connection cap is refused while another CID is admitted', () => {
    const l = limits();
    assert.equal(l.admit(guest(5), 0), undefined);
    assert.equal(l.admit(guest(5), 0), undefined);
    assert.equal(l.admit(guest(5), 0)?.reason, 'per_cid');
    assert.equal(l.admit(guest(6), 0), undefined);
    l.release(guest(5));
    assert.equal(l.admit(guest(5), 0), undefined, 'a released slot is free again');
  });

  test('the total cap holds across CIDs, and the host loopback is exempt only from the per-CID cap', () => {
    const l = limits();
    for (let i = 0; i < 4; i++) assert.equal(l.admit(guest(1), 0), undefined, 'CID 1 past the per-CID cap');
    assert.equal(l.admit(guest(7), 0), undefined);
    assert.equal(l.admit(guest(8), 0)?.reason, 'total');
  });

  test('Unix peers are never limited', () => {
    const l = limits({ maxTotal: 1 });
    for (let i = 0; i < 10; i++) assert.equal(l.admit({ transport: 'unix', listener: '/run/x.sock' }, 0), undefined);
  });

  test('sessions per minute per CID, a sliding window', () => {
    const l = limits();
    for (const t of [0, 1000, 2000]) assert.equal(l.startSession(guest(9), t), undefined);
    assert.equal(l.startSession(guest(9), 3000)?.reason, 'session_rate');
    assert.equal(l.startSession(guest(10), 3000), undefined, 'another CID has its own budget');
    assert.equal(l.startSession(guest(9), 60_500), undefined, 'the first boot left the window');
    assert.equal(l.startSession(guest(1), 3000), undefined);
  });

  test('refusals come in bursts: only the first of a burst is to be logged', () => {
    const l = limits({ maxPerCid: 0 });
    assert.equal(l.admit(guest(5), 0)?.firstOfBurst, true);
    assert.equal(l.admit(guest(5), 5000)?.firstOfBurst, false);
    assert.equal(l.admit(guest(6), 5000)?.firstOfBurst, true, 'another CID starts its own burst');
    assert.equal(l.admit(guest(5), 14_000)?.firstOfBurst, false, 'still within 10 s of the last refusal');
    assert.equal(l.admit(guest(5), 25_000)?.firstOfBurst, true, 'a quiet gap ends the burst');
  });
});
