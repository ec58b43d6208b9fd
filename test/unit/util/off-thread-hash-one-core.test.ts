import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';

// A machine (or a container's cpuset) with one CPU: no hashing thread is started.
vi.mock('node:os', async (original) => ({ ...(await original<typeof import('node:os')>()), availableParallelism: () => 1 }));

const { INLINE_LIMIT, StreamHash } = await import('../../../src/util/off-thread-hash.js');

describe('StreamHash on one core', () => {
  it('hashes a large stream on the calling thread and keeps none of its chunks', async () => {
    const hash = new StreamHash('sha256');
    const chunk = randomBytes(256 * 1024);
    const expected = createHash('sha256');
    for (let i = 0; i < (INLINE_LIMIT * 8) / chunk.length; i++) {
      expect(hash.update(chunk)).toBeUndefined();
      expected.update(chunk);
    }
    // The copies kept for a worker that never comes are released: memory does not grow with the stream.
    const kept = hash as unknown as { head: Uint8Array[]; headBytes: number };
    expect([kept.head.length, kept.headBytes]).toEqual([0, 0]);
    expect(await hash.digest()).toBe(expected.digest('hex'));
  });
});
