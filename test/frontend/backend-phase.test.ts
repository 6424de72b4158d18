// A backend phase under its deadline and the session's lifetime
// (frontend/backend-phase.ts): what `ctx.signal` does, as docs/backends.md says.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import type { PhaseContext } from '../../src/backends/contract.js';
import { type PhaseHost, type PhaseReporting, runPhase } from '../../src/frontend/backend-phase.js';
import { SessionSlot } from '../../src/frontend/session-slot.js';
import { BackendTimeoutError, GuestGoneError, SessionSupersededError } from '../../src/protocol/errors.js';

function host(phaseTimeoutMs: number) {
  const busy: Array<Promise<void>> = [];
  const h: PhaseHost = { phaseTimeoutMs, backendBusy: (settled) => busy.push(settled) };
  return { host: h, busy };
}

const reporting = (): PhaseReporting => ({ abort: new AbortController(), observe: () => undefined, annotate: () => undefined });

/** A backend phase that hands over its context and never settles by itself. */
function pending() {
  let ctx: PhaseContext | undefined;
  let finish: (v: string) => void = () => undefined;
  const run = (c: PhaseContext) => {
    ctx = c;
    return new Promise<string>((resolve) => (finish = resolve));
  };
  return { run, ctx: () => ctx as PhaseContext, finish: (v: string) => finish(v) };
}

describe("a backend phase's signal", () => {
  test('aborts when the guest leaves or reboots; the phase gives up at once and the link still waits for the work', async () => {
    for (const reason of [new GuestGoneError('guest connection closed'), new SessionSupersededError()]) {
      const slot = new SessionSlot();
      const { host: h, busy } = host(60_000);
      const work = pending();
      const phase = runPhase(h, slot, 'negotiate', reporting(), work.run);
      assert.equal(work.ctx().signal.aborted, false);
      slot.end(reason);
      await assert.rejects(phase, (e) => e === reason);
      assert.equal(work.ctx().signal.reason, reason);
      let settled = false;
      void busy[0]?.then(() => (settled = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(settled, false, 'the link waits for work the session gave up on');
      work.finish('late');
      await busy[0];
    }
  });

  test('aborts at the phase deadline with BackendTimeoutError, whatever the backend does with it', async () => {
    const slot = new SessionSlot();
    const { host: h, busy } = host(30);
    const work = pending();
    const phase = runPhase(h, slot, 'attest', reporting(), work.run);
    await assert.rejects(phase, BackendTimeoutError);
    assert.ok(work.ctx().signal.reason instanceof BackendTimeoutError);
    await busy[0];
    assert.equal(slot.endedBy, undefined, 'the session lives on, to answer the guest');
  });

  test('is one for the whole session: both phases get the same signal, which a later end aborts', async () => {
    const slot = new SessionSlot();
    const { host: h } = host(60_000);
    const r = reporting();
    const first = pending();
    const negotiated = runPhase(h, slot, 'negotiate', r, first.run);
    first.finish('challenge');
    assert.equal(await negotiated, 'challenge');
    assert.equal(first.ctx().signal.aborted, false, 'a phase that went through leaves it alone');
    const second = pending();
    const attested = runPhase(h, slot, 'attest', r, second.run);
    assert.equal(second.ctx().signal, first.ctx().signal);
    const aborted = once(second.ctx().signal, 'abort');
    slot.end(new GuestGoneError('guest connection closed'));
    await aborted;
    await assert.rejects(attested, GuestGoneError);
  });

  test('a session that already ended: the phase is refused at once, with its reason', async () => {
    const slot = new SessionSlot();
    const reason = new SessionSupersededError();
    slot.end(reason);
    const work = pending();
    await assert.rejects(runPhase(host(60_000).host, slot, 'negotiate', reporting(), work.run), (e) => e === reason);
    assert.equal(work.ctx().signal.aborted, true);
    work.finish('ignored');
  });
});
