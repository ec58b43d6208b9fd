/**
 * Counts what a copy holds in memory at once, inside the process: bytes read from the source (copy's progress) minus
 * bytes the destination has taken. Backpressure fixes that number whatever else the machine is doing, unlike peak
 * RSS, which moves with the GC and the load; a stage that buffered a whole layer would show the layer's size.
 */
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageDestination } from '../../src/image/image.js';
import type { BlobProgress, CopyOptions } from '../../src/ops/copy.js';

/**
 * Wraps a destination so that every blob it stores is counted as the destination reads it, and reports the most
 * bytes that were ever between the source (as copy's progress counts them) and the destination.
 */
export class InFlightMeter {
  private read = 0;
  private stored = 0;
  peak = 0;

  /** Copy's progress callback; the copy must move one blob at a time (concurrency 1) for the counts to pair up. */
  onProgress = (e: BlobProgress): void => {
    if (e.phase === 'start') this.read = 0;
    if (e.phase !== 'bytes') return;
    this.read = e.bytes;
    this.peak = Math.max(this.peak, this.read - this.stored);
  };

  wrap(destination: ImageDestination): ImageDestination {
    const putBlob = async (content: Readable, expected?: Parameters<ImageDestination['putBlob']>[1]) => {
      this.stored = 0;
      const counter = new Transform({
        transform: (chunk: Buffer, _enc, cb) => {
          this.stored += chunk.length;
          cb(null, chunk);
        },
      });
      pipeline(content, counter).catch(() => {});
      return destination.putBlob(counter, expected);
    };
    return {
      description: destination.description,
      preservesLayerAnnotations: destination.preservesLayerAnnotations,
      canStoreIndex: destination.canStoreIndex,
      reuseBlob: (blob, source) => destination.reuseBlob(blob, source),
      putBlob,
      putManifest: (bytes, mediaType) => destination.putManifest(bytes, mediaType),
      commit: (root) => destination.commit(root),
      abort: () => destination.abort(),
    };
  }
}

/** Options for a copy measured by `meter`: one blob at a time, so the counts pair up. */
export function metered(meter: InFlightMeter): Pick<CopyOptions, 'concurrency' | 'onProgress'> {
  return { concurrency: 1, onProgress: meter.onProgress };
}
