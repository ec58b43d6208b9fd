import type { Readable } from 'node:stream';
import { ImagegateError } from '../errors.js';
import { VerifyingStream } from '../image/digest.js';
import type { Descriptor } from '../image/descriptor.js';
import { readAll, streamThrough } from '../util/streams.js';

/**
 * Wraps a blob's raw bytes so the stream errors at its end unless they match the descriptor's digest and size.
 * Read failures and mismatches both surface on the returned stream; `mapReadError` words read failures (a registry
 * turns a reset connection into a temporary error).
 */
export function verifiedBlobStream(raw: Readable, desc: Descriptor, mapReadError?: (e: unknown) => Error): Readable {
  return streamThrough(raw, [new VerifyingStream(desc, 'blob')], (e) => (e instanceof ImagegateError || mapReadError === undefined ? (e as Error) : mapReadError(e)));
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
