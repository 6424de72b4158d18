import { FrameTooLargeError, FrameTruncatedError } from './errors.js';

/** Bytes in a frame header: the payload length as a little-endian u64. */
export const FRAME_HEADER_BYTES = 8;
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** One frame: 8-byte little-endian length, then the payload, in one buffer. */
export function encodeFrame(payload: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.byteLength);
  frame.writeBigUInt64LE(BigInt(body.byteLength), 0);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Incremental decoder for length-prefixed frames. Accepts any chunking; checks
 * the announced length against `maxFrameBytes` before allocating anything for
 * the payload, and then allocates exactly that payload once.
 */
export class FrameDecoder {
  private max: number;
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private payload: Buffer | null = null;
  private payloadFill = 0;
  private failed: Error | null = null;

  constructor(options: { maxFrameBytes?: number } = {}) {
    this.max = checkedMax(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
  }

  /** The largest payload accepted. A new value applies from the next frame header (a reload reaches a live link). */
  get maxFrameBytes(): number {
    return this.max;
  }

  set maxFrameBytes(max: number) {
    this.max = checkedMax(max);
  }

  /** Bytes of a not yet complete frame held right now (header included). */
  get buffered(): number {
    return this.headerFill + this.payloadFill;
  }

  /** True between the first byte of a frame and its last. */
  get inFrame(): boolean {
    return this.headerFill > 0;
  }

  /** Feeds a chunk; returns the frames it completed, in order. Throws FrameTooLargeError. */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    const frames: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.headerFill < FRAME_HEADER_BYTES) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - at);
        this.header.set(chunk.subarray(at, at + n), this.headerFill);
        this.headerFill += n;
        at += n;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        const announced = this.header.readBigUInt64LE(0);
        if (announced > BigInt(this.max)) {
          this.failed = new FrameTooLargeError(announced, this.max);
          throw this.failed;
        }
        if (announced === 0n) {
          frames.push(Buffer.alloc(0));
          this.headerFill = 0;
          continue;
        }
        this.payload = Buffer.allocUnsafe(Number(announced));
        this.payloadFill = 0;
      }
      const payload = this.payload as Buffer;
      const n = Math.min(payload.length - this.payloadFill, chunk.length - at);
      payload.set(chunk.subarray(at, at + n), this.payloadFill);
      this.payloadFill += n;
      at += n;
      if (this.payloadFill === payload.length) {
        frames.push(payload);
        this.payload = null;
        this.payloadFill = 0;
        this.headerFill = 0;
      }
    }
    return frames;
  }

  /** Call at end of stream: throws FrameTruncatedError if a frame was cut off. */
  end(): void {
    if (this.failed) return;
    if (this.inFrame) throw new FrameTruncatedError(this.buffered);
  }
}

function checkedMax(max: number): number {
  if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`maxFrameBytes must be a non-negative integer, got ${max}`);
  return max;
}
