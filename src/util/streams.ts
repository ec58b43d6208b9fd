import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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

/**
 * Runs `source` through `stages` and returns what comes out. A failure anywhere reaches the reader as `mapError(e)`:
 * the returned stream is not itself part of the pipeline, which would destroy it with the raw error first (a zlib or
 * socket error instead of our message, and without its `temporary` flag). Destroying the returned stream stops the
 * pipeline.
 */
export function streamThrough(source: Readable, stages: readonly NodeJS.ReadWriteStream[], mapError: (e: unknown) => Error = toError): Readable {
  const tail = new PassThrough();
  const out = new PassThrough();
  tail.pipe(out);
  out.on('close', () => {
    if (!out.readableEnded) tail.destroy();
  });
  pipeline([source, ...stages, tail]).catch((e: unknown) => out.destroy(mapError(e)));
  return out;
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
