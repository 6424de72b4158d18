import type { Socket } from 'node:net';
import { FrameTimeoutError } from '../protocol/errors.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from '../protocol/framing.js';

/** Read again at the start of every frame, so a reload reaches a link that lives as long as its VM. */
export interface FrameReaderOptions {
  readonly maxFrameBytes: number;
  /** Deadline for finishing a frame once its first byte arrived. Idle time between frames is free. */
  readonly frameTimeoutMs: number;
  /** Called for each complete frame: its size, how many reads it took, and how long from first byte to last. */
  readonly onFrame?: (stats: FrameStats) => void;
}

export interface FrameStats {
  readonly bytes: number;
  readonly reads: number;
  readonly ms: number;
}

/**
 * Pulls whole frames from a guest socket, one `next()` at a time. The socket
 * is paused while a complete frame waits to be taken, and while the owner
 * holds the reader (an answer not yet taken by the guest), so a guest cannot
 * make the proxy buffer more than one frame plus the one being decoded.
 */
export class FrameReader {
  private readonly decoder: FrameDecoder;
  private readonly frames: Buffer[] = [];
  private waiter: { resolve: (f: Buffer | null) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reads = 0;
  private firstByteAt = 0;
  private held = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: FrameReaderOptions,
  ) {
    this.decoder = new FrameDecoder({ maxFrameBytes: options.maxFrameBytes });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset between frames is a guest leaving (SVSM force-closes vsock
      // streams when it is done), not a fault; inside a frame it truncates it.
      if ((err.code === 'ECONNRESET' || err.code === 'EPIPE') && !this.decoder.inFrame) this.onEnd();
      else this.fail(err);
    });
    if (socket.destroyed) this.onEnd();
  }

  /** Bytes of an unfinished frame held right now. */
  get buffered(): number {
    return this.decoder.buffered;
  }

  /** True while `hold()` keeps the socket unread. */
  get isHeld(): boolean {
    return this.held;
  }

  /**
   * Stops reading the socket until `release()`, whatever `next()` asks:
   * unread bytes stay in the kernel, and a guest that keeps writing is
   * stopped by its own full send buffer. Costs no CPU while held.
   */
  hold(): void {
    this.held = true;
    this.socket.pause();
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.waiter && this.frames.length === 0 && !this.ended) this.socket.resume();
  }

  /** The next frame, or null at a clean end of stream (between frames). */
  next(): Promise<Buffer | null> {
    if (this.waiter) return Promise.reject(new Error('FrameReader.next() called while a read is pending'));
    const frame = this.frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(null);
    if (!this.held) this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    if (!this.decoder.inFrame) {
      this.firstByteAt = performance.now();
      this.decoder.maxFrameBytes = this.options.maxFrameBytes;
    }
    this.reads++;
    let complete: Buffer[];
    try {
      complete = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (complete.length > 0) {
      const onFrame = this.options.onFrame;
      if (onFrame)
        for (const f of complete)
          onFrame({ bytes: f.length + FRAME_HEADER_BYTES, reads: this.reads, ms: performance.now() - this.firstByteAt });
      this.reads = this.decoder.inFrame ? 1 : 0;
      this.firstByteAt = performance.now();
      this.frames.push(...complete);
    }
    this.armTimer();
    if (this.frames.length === 0) return;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(this.frames.shift() ?? null);
    }
    // Nobody is waiting now: hold further input until the next read.
    this.socket.pause();
  }

  private armTimer(): void {
    if (!this.decoder.inFrame) {
      clearTimeout(this.timer);
      this.timer = undefined;
    } else if (this.timer === undefined) {
      const ms = this.options.frameTimeoutMs;
      this.timer = setTimeout(() => this.fail(new FrameTimeoutError(ms, this.decoder.buffered)), ms);
    }
  }

  private onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    try {
      this.decoder.end();
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(this.frames.shift() ?? null);
  }

  private fail(err: Error): void {
    clearTimeout(this.timer);
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }
}
