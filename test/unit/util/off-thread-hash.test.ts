import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { INLINE_LIMIT, StreamHash } from '../../../src/util/off-thread-hash.js';

/** Feeds `chunks` the way a Transform does: the next chunk only after the previous one was taken. */
async function hashAll(hash: StreamHash, chunks: Buffer[], scribble = false): Promise<string> {
  for (const chunk of chunks) {
    await hash.update(chunk);
    // Once update resolved the hash holds its own copy: a caller reusing its buffer must not change the result.
    if (scribble) chunk.fill(0xee);
  }
  return hash.digest();
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(Buffer.from(bytes.subarray(at, at + size)));
  return out;
}

describe('StreamHash', () => {
  const small = randomBytes(1000);
  // Past the inline limit and several times the ring, in odd chunk sizes, so pieces wrap around the ring's end.
  const large = randomBytes(INLINE_LIMIT * 11 + 12345);

  it('gives the SHA-256 of small content hashed on the calling thread', async () => {
    expect(await hashAll(new StreamHash('sha256'), [small])).toBe(createHash('sha256').update(small).digest('hex'));
  });

  it('gives the SHA-256 and SHA-512 of large content hashed on a worker thread', async () => {
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const expected = createHash(algorithm).update(large).digest('hex');
      expect(await hashAll(new StreamHash(algorithm), chunksOf(large, 777_777))).toBe(expected);
    }
  });

  it('gives the HMAC-SHA256 with a key, small and large', async () => {
    const key = randomBytes(32);
    for (const bytes of [small, large]) {
      expect(await hashAll(new StreamHash('sha256', key), chunksOf(bytes, 1 << 20))).toBe(createHmac('sha256', key).update(bytes).digest('hex'));
    }
  });

  it('copies each chunk, so the caller may reuse its buffer once update resolved', async () => {
    const expected = createHash('sha256').update(large).digest('hex');
    expect(await hashAll(new StreamHash('sha256'), chunksOf(large, 300_000), true)).toBe(expected);
  });

  it('keeps streams apart when many share the worker threads', async () => {
    const inputs = Array.from({ length: 5 }, () => randomBytes(INLINE_LIMIT * 2 + 1));
    const digests = await Promise.all(inputs.map((bytes) => hashAll(new StreamHash('sha256'), chunksOf(bytes, 65536))));
    expect(digests).toEqual(inputs.map((bytes) => createHash('sha256').update(bytes).digest('hex')));
  });

  it('serves more streams than its ring has slots, fed in small interleaved chunks, without waiting for ever', async () => {
    const inputs = Array.from({ length: 20 }, () => randomBytes(INLINE_LIMIT + 300_000));
    const digests = await Promise.all(inputs.map((bytes) => hashAll(new StreamHash('sha256'), chunksOf(bytes, 4096))));
    expect(digests).toEqual(inputs.map((bytes) => createHash('sha256').update(bytes).digest('hex')));
  });

  it('hashes an empty stream', async () => {
    expect(await new StreamHash('sha256').digest()).toBe(createHash('sha256').digest('hex'));
  });
});
