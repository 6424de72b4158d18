import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestLimits } from '../../src/frontend/guest-limits.js';
import { LogBursts } from '../../src/frontend/log-bursts.js';
import { SessionBudget } from '../../src/frontend/session-budget.js';
import type { GuestPeer } from '../../src/frontend/transport.js';

const limits = (o: Partial<ConstructorParameters<typeof GuestLimits>[0]> = {}) =>
  new GuestLimits({ maxPerCid: 2, maxTotal: 5, sessionsPerMinute: 3, sessionBurst: 2, trustedCids: new Set([1]), ...o });
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

  test('a vsock peer whose CID the kernel cannot give is refused, never taken for the trusted loopback (fail closed)', () => {
    const l = limits();
    const anonymous: GuestPeer = { transport: 'vsock', listener: 'vsock:1995' };
    for (let i = 0; i < 10; i++) assert.equal(l.admit(anonymous, 0)?.reason, 'no_cid');
    assert.equal(l.admit(guest(5), 0), undefined, 'a guest with a CID is still admitted');
  });

  test('Unix peers are never limited', () => {
    const l = limits({ maxTotal: 1 });
    for (let i = 0; i < 10; i++) assert.equal(l.admit({ transport: 'unix', listener: '/run/x.sock' }, 0), undefined);
  });

  test('a VM has one account across its links: a vsock CID, or a Unix listener; the host loopback has one per connection', () => {
    const l = limits();
    const quiet = { warn: () => undefined };
    const [vsockListener, serialA, serialB] = [{}, {}, {}];
    assert.equal(l.account(guest(9), vsockListener, quiet), l.account(guest(9), vsockListener, quiet), 'reconnecting does not reset a CID');
    assert.notEqual(l.account(guest(9), vsockListener, quiet), l.account(guest(10), vsockListener, quiet));
    const unix = { transport: 'unix' as const, listener: 'vm-a' };
    assert.equal(l.account(unix, serialA, quiet), l.account(unix, serialA, quiet), 'reconnecting to its socket does not reset a VM');
    assert.notEqual(l.account(unix, serialA, quiet), l.account({ ...unix, listener: 'vm-b' }, serialB, quiet));
    assert.notEqual(l.account(guest(1), vsockListener, quiet), l.account(guest(1), vsockListener, quiet));
  });

  test('an account outlives its links until its budget is whole and its orphaned server work settled', async () => {
    const l = limits();
    const quiet = { warn: () => undefined };
    const serial = {};
    const unix = { transport: 'unix' as const, listener: 'vm-a' };
    const first = l.account(unix, serial, quiet);
    first.budget.take(0);
    l.leave(unix, serial, first);
    l.forgetIdle(1000);
    assert.equal(l.account(unix, serial, quiet), first, 'kept while its budget is spent');
    l.leave(unix, serial, first);
    let settle: () => void = () => undefined;
    const work = new Promise<void>((r) => {
      settle = r;
    });
    first.orphans.add(work);
    l.forgetIdle(120_000);
    assert.equal(l.account(unix, serial, quiet), first, "kept while a closed link's exchange runs");
    l.leave(unix, serial, first);
    settle();
    first.orphans.delete(work);
    l.forgetIdle(120_000);
    assert.notEqual(l.account(unix, serial, quiet), first);
  });

  test('an account is kept while a link holds it, whatever its budget', () => {
    const l = limits();
    const quiet = { warn: () => undefined };
    const first = l.account(guest(9), {}, quiet);
    l.forgetIdle(120_000);
    assert.equal(l.account(guest(9), {}, quiet), first);
  });

  test('guest connections of every transport count toward the open-file cap; a released one frees its slot', () => {
    const l = new GuestLimits({ maxPerCid: 2, maxTotal: 5, sessionsPerMinute: 3, sessionBurst: 2, trustedCids: new Set([1]) }, 2);
    const unix: GuestPeer = { transport: 'unix', listener: 'vm-a' };
    assert.equal(l.admit(unix, 0), undefined);
    assert.equal(l.admit(guest(5), 0), undefined);
    assert.equal(l.admit(unix, 0)?.reason, 'open_files');
    assert.equal(l.admit(guest(1), 0)?.reason, 'open_files', 'the trusted loopback too');
    l.release(unix);
    assert.equal(l.admit(guest(6), 0), undefined);
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

describe('session budget', () => {
  test('a burst starts at once, then sessions are paced at the sustained rate', () => {
    const b = new SessionBudget({ perMinute: 30, burst: 3 }, 0);
    for (let i = 0; i < 3; i++) assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 2000, 'the fourth waits one refill (60 s / 30)');
    assert.equal(b.take(1000), 1000);
    assert.equal(b.take(2000), 0);
    assert.equal(b.take(2000), 2000);
  });

  test('a guest that boots once in a while never waits', () => {
    const b = new SessionBudget({ perMinute: 30, burst: 10 }, 0);
    for (let t = 0; t < 600_000; t += 5_000) assert.equal(b.take(t), 0);
  });
});

describe('log bursts', () => {
  test('the first warning of a burst is written, repeats are counted into one summary', () => {
    const lines: Array<[Record<string, unknown>, string]> = [];
    const b = new LogBursts({ warn: (f, m) => lines.push([f, m]) }, 10_000);
    for (let t = 0; t < 5000; t += 10) b.warn('session:failure:INVALID_JSON', { conn: 'c1' }, 'session failure', t);
    b.warn('paced', {}, 'paced', 5000);
    assert.equal(lines.length, 2);
    b.warn('session:failure:INVALID_JSON', { conn: 'c1' }, 'session failure', 20_000);
    assert.equal(lines.length, 4, 'a quiet gap ends the burst: its summary, then the new first line');
    assert.equal(lines[2]?.[0].repeated, 499);
    assert.match(lines[2]?.[1] ?? '', /499 more/);
    b.flush();
    assert.equal(lines.length, 4, 'nothing suppressed since');
  });
});
