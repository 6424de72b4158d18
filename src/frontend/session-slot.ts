import type { GuestFrame, SessionControl } from './session.js';

/** One session in flight, as the link sees it. */
export class SessionSlot implements SessionControl {
  private readonly controller = new AbortController();
  private waiter: { resolve: (f: GuestFrame) => void; reject: (e: unknown) => void } | undefined;
  done: Promise<void> = Promise.resolve();

  get ended(): AbortSignal {
    return this.controller.signal;
  }

  /** True while the session waits for the guest's AttestationRequest. */
  get awaitingFrame(): boolean {
    return this.waiter !== undefined;
  }

  nextFrame(): Promise<GuestFrame> {
    if (this.ended.aborted) return Promise.reject(this.ended.reason);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  deliver(frame: GuestFrame): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(frame);
  }

  end(reason: Error): void {
    if (this.ended.aborted) return;
    this.controller.abort(reason);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(reason);
  }
}
