import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImagegateError } from '../errors.js';
import { VerifyingStream } from '../image/digest.js';
import type { Descriptor } from '../image/descriptor.js';
import { readAll } from '../util/streams.js';

/**
 * Wraps a blob's raw bytes so the stream errors at its end unless they match the descriptor's digest and size.
 * Read failures and mismatches both surface on the returned stream.
 */
export function verifiedBlobStream(raw: Readable, desc: Descriptor): Readable {
  const out = new PassThrough();
  pipeline(raw, new VerifyingStream(desc, 'blob'), out).catch((e: unknown) => out.destroy(e as Error));
  return out;
}

/** Reads a small blob whole through `open`, refusing blobs that declare more than `limit` bytes. */
export async function readVerifiedBlob(
  open: (desc: Descriptor) => Promise<Readable>,
  desc: Descriptor,
  limit: number,
  description: string,
): Promise<Buffer> {
  if (desc.size > limit) {
    throw new ImagegateError('BAD_FORMAT', `${description}: blob ${desc.digest} declares ${desc.size} bytes, more than the ${limit} allowed for a ${desc.mediaType}`);
  }
  return readAll(await open(desc), limit, `blob ${desc.digest}`);
}
