import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder } from '../../src/protocol/index.js';

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(prev, p));
    prev = p;
  }
  chunks.push(bytes.subarray(prev));
  return chunks;
}

describe('frame decoder', () => {
  test('any chunking of any sequence of frames yields the same frames (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
          const dec = new FrameDecoder({ maxFrameBytes: 300 });
          const out: Buffer[] = [];
          for (const chunk of splitAt(stream, cuts)) out.push(...dec.push(chunk));
          dec.end();
          assert.equal(out.length, payloads.length);
          for (const [i, f] of out.entries()) assert.deepEqual(new Uint8Array(f), payloads[i]);
          assert.equal(dec.buffered, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('byte-by-byte delivery of several frames', () => {
    const stream = Buffer.concat([encodeFrame('{"a":1}'), encodeFrame(''), encodeFrame('xyz')]);
    const dec = new FrameDecoder();
    const out: string[] = [];
    for (const b of stream) out.push(...dec.push(Uint8Array.of(b)).map((f) => f.toString()));
    assert.deepEqual(out, ['{"a":1}', '', 'xyz']);
  });

  test('an oversized header is refused before any payload is buffered', () => {
    const dec = new FrameDecoder({ maxFrameBytes: 1024 });
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(2n ** 40n);
    assert.throws(
      () => dec.push(header),
      (err: Error & { code?: string; announced?: bigint }) => {
        assert.equal(err.code, 'FRAME_TOO_LARGE');
        assert.equal(err.announced, 2n ** 40n);
        assert.match(err.message, /1099511627776 bytes, above the limit of 1024/);
        return true;
      },
    );
    // A decoder that refused a frame stays refused.
    assert.throws(() => dec.push(Uint8Array.of(1)), { code: 'FRAME_TOO_LARGE' });
  });

  test('u64::MAX in the header is refused, not allocated', () => {
    const dec = new FrameDecoder();
    assert.throws(() => dec.push(Buffer.alloc(8, 0xff)), { code: 'FRAME_TOO_LARGE' });
  });

  test('a frame exactly at the limit is accepted', () => {
    const dec = new FrameDecoder({ maxFrameBytes: 16 });
    assert.equal(dec.push(encodeFrame(Buffer.alloc(16, 1))).length, 1);
  });

  test('end of stream inside a frame is reported as truncated', () => {
    const dec = new FrameDecoder();
    dec.push(encodeFrame('hello').subarray(0, 10));
    assert.equal(dec.inFrame, true);
    assert.equal(dec.buffered, 10);
    assert.throws(() => dec.end(), { code: 'FRAME_TRUNCATED' });
  });
});
