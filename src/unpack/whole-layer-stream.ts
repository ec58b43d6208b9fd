import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ImagegateError } from '../errors.js';
import type { LayerDecryptStream } from '../crypto/layer-cipher.js';

export interface WholeLayerStages {
  /** For an encrypted layer: its decrypt stream, which checks the HMAC over the whole ciphertext at the end. */
  decrypt?: LayerDecryptStream;
  gzip: boolean;
}

/**
 * gunzip's output chunk. zlib's default of 16 KiB means one callback into JavaScript (and one stream write) per 16 KiB
 * of a layer: `init --unpack` of a 1 GiB, 4-layer image took 8.2 s, 4.1 s at 256 KiB (umoci: 4.45 s unencrypted).
 * Larger chunks are faster still but hold more memory at once (1 MiB: 3.5 s, 229 MiB peak RSS against 205 MiB).
 */
const GUNZIP_CHUNK = 256 * 1024;

/**
 * A layer's uncompressed tar, as a stream that ends only once the whole layer was read and found sound: the source
 * blob read to its end (sources check its digest there), the whole ciphertext decrypted and its HMAC verified, and
 * every byte after decryption consumed by gunzip. Anything that fails, anywhere, reaches the reader as
 * `mapError(e)` instead of the end.
 *
 * Why not simply the end of gunzip: gunzip ends where its gzip stream ends, and Node's gunzip quietly drops zero
 * bytes after it. A tar reader ends there too. So a layer decrypted into "a complete gzip stream + padding" (AES-CTR
 * lets anyone who knows the plaintext choose it) would end before the ciphertext was all read, and the HMAC at its
 * end would never be asked. Here the end waits for every stage, and trailing bytes are an error of their own.
 */
export function wholeLayerStream(blob: Readable, stages: WholeLayerStages, label: string, mapError: (e: unknown) => Error): Readable {
  const gunzip = stages.gzip ? createGunzip({ chunkSize: GUNZIP_CHUNK }) : undefined;
  const compressed = new ByteCount();
  const chain: NodeJS.ReadWriteStream[] = [];
  if (stages.decrypt !== undefined) chain.push(stages.decrypt);
  if (gunzip !== undefined) chain.push(compressed, gunzip);

  const tail = new PassThrough();
  const out = new PassThrough();
  // The reader's end is ours to give, after the checks below; the tail's end only means gunzip stopped.
  tail.pipe(out, { end: false });
  out.on('close', () => {
    if (!out.writableFinished) tail.destroy();
  });
  pipeline([blob, ...chain, tail])
    .then(async () => {
      await finished(tail);
      if (stages.decrypt !== undefined && !stages.decrypt.verified) {
        throw new ImagegateError('INTEGRITY', `${label}: the layer ended before its HMAC was verified; refused`);
      }
      // bytesWritten counts what the inflater consumed, which stops at the end of the gzip stream (several members
      // concatenated are one gzip stream, as RFC 1952, Go and containerd read them). Past the HMAC check the bytes
      // are the publisher's own, so this is a malformed layer rather than an altered one.
      if (gunzip !== undefined && gunzip.bytesWritten !== compressed.bytes) {
        const extra = compressed.bytes - gunzip.bytesWritten;
        throw new ImagegateError(
          'BAD_FORMAT',
          `${label}: ${extra} byte(s) follow the end of the layer's gzip stream; a layer is one gzip stream and nothing after it, so it is refused`,
        );
      }
      out.end();
    })
    .catch((e: unknown) => out.destroy(mapError(e)));
  return out;
}

/** Passes bytes through, counting them. */
class ByteCount extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}
