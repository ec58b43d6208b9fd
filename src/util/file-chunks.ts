import type { FileHandle } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { markReleasable, releaseChunk, type TransferableBuffer } from './chunk-release.js';


/**
 * Reads a file as chunks of `chunkBytes` that later stages may free when done (chunk-release.ts): each chunk is a
 * fresh buffer this reader never touches again. Closes the handle when the stream ends or is destroyed.
 */
export class FileChunkReader extends Readable {
  constructor(
    private readonly handle: FileHandle,
    private readonly chunkBytes: number,
  ) {
    super({ highWaterMark: chunkBytes });
  }

  override _read(): void {
    const chunk = Buffer.allocUnsafeSlow(this.chunkBytes);
    this.handle.read(chunk, 0, this.chunkBytes, null).then(({ bytesRead }) => {
      if (bytesRead === 0) {
        this.push(null);
        return;
      }
      // A short read (the file's end) shrinks the buffer itself rather than handing on a view of a larger one.
      this.push(markReleasable(bytesRead === this.chunkBytes ? chunk : Buffer.from((chunk.buffer as TransferableBuffer).transfer(bytesRead))));
    }, (e: unknown) => this.destroy(e instanceof Error ? e : new Error(String(e))));
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => cb(error),
      (e: unknown) => cb(error ?? (e as Error)),
    );
  }
}

/**
 * Writes a stream to a file and frees each chunk once it is on its way to disk (chunk-release.ts). Closes the handle
 * when the stream finishes or is destroyed; `finish` fires only after the close, so the file is complete by then.
 */
export class FileSink extends Writable {
  private closing: Promise<void> | undefined;

  constructor(private readonly handle: FileHandle) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    writeFully(this.handle, buffers).then(() => {
      for (const b of buffers) releaseChunk(b);
      cb();
    }, cb);
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.close().then(() => cb(), cb);
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.close().then(
      () => cb(error),
      (e: unknown) => cb(error ?? (e as Error)),
    );
  }

  private close(): Promise<void> {
    return (this.closing ??= this.handle.close());
  }
}

/** writev until every byte is written: the system may write less than asked (a signal, a nearly full disk). */
async function writeFully(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0);
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending);
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (bytesWritten >= b.length) {
        bytesWritten -= b.length;
        continue;
      }
      rest.push(b.subarray(bytesWritten));
      bytesWritten = 0;
    }
    pending = rest;
  }
}
