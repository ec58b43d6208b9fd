import type { Readable } from 'node:stream';
import { ImagegateError } from '../errors.js';

/** Collects a small stream (a manifest, a config, a key file) into memory, refusing more than `limit` bytes. */
export async function readAll(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      stream.destroy();
      throw new ImagegateError('BAD_FORMAT', `${what} is larger than the ${limit} bytes allowed for it`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** Reads and discards a stream; used where only the stream's side effects (hashing, verifying) matter. */
export async function drain(stream: Readable): Promise<void> {
  for await (const _ of stream) {
    // nothing: the chunks are not needed
  }
}
