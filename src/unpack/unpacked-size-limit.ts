import { Transform, type TransformCallback } from 'node:stream';
import { ImagegateError } from '../errors.js';

/**
 * How many uncompressed bytes (tar headers included) the layers of one unpack may add up to, unless raised. Large
 * enough for application layers, small enough that a gzip bomb (a few MiB that inflate to anything) cannot fill the
 * node's disk through an emptyDir before it is noticed.
 */
export const DEFAULT_MAX_UNPACKED_BYTES = 4 * 1024 ** 3;

/** The uncompressed bytes of every layer of one unpack, counted against one limit. */
export class UnpackedSizeLimit {
  private used = 0;

  constructor(readonly max: number) {}

  /** Passes a layer's tar through, failing as soon as the running total goes over the limit. */
  meter(label: string): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void => {
        this.used += chunk.length;
        if (this.used > this.max) {
          cb(
            new ImagegateError(
              'INTEGRITY',
              `${label}: the layers unpack to more than ${this.max} bytes, the limit for one unpack; nothing was written. If the image really is that large, raise the limit with --max-unpacked-size`,
            ),
          );
          return;
        }
        cb(null, chunk);
      },
    });
  }
}
