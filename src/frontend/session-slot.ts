import type { GuestFrame, SessionControl } from './session.js';

/** One session in flight, as the link sees it. */
export class SessionSlot implements SessionControl {
  private reason: Error | undefined;
  /** At most a phase at a time listens: plain callbacks, not an EventTarget (whose add and remove showed in profiles). */
  private listeners: Array<(reason: Error) => void> = [];
  private waiter: { resolve: (f: GuestFrame) => void; reject: (e: unknown) => void } | undefined;
  done: Promise<void> = Promise.resolve();

  get endedBy(): Error | undefined {
    return this.reason;
  }

  onEnded(listener: (reason: Error) => void): () => void {
    if (this.reason !== undefined) {
      listener(this.reason);
      return noop;
    }
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** True while the session waits for the guest's AttestationRequest. */
  get awaitingFrame(): boolean {
    return this.waiter !== undefined;
  }

  nextFrame(): Promise<GuestFrame> {
    if (this.reason !== undefined) return Promise.reject(this.reason);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  deliver(frame: GuestFrame): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(frame);
  }

  end(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener(reason);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(reason);
  }
}

const noop = () => undefined;
