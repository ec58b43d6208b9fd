import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { FileChunkReader } from '../util/file-chunks.js';
import { readAll } from '../util/streams.js';

/**
 * Read access to the files of an OCI image layout, wherever the layout lives: a directory (`oci:`) or a tar
 * archive (`oci-archive:`, and `docker save` output, which is a layout too since Docker 25).
 */
export interface LayoutFiles {
  /** Human-readable location of `relPath`, for messages. */
  describe(relPath: string): string;
  exists(relPath: string): Promise<boolean>;
  /** Streams a file; throws NOT_FOUND when it is missing. */
  open(relPath: string): Promise<Readable>;
  readFile(relPath: string, limit: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Reads in chunks large enough that per-chunk work (stream callbacks, messages to the hashing threads) stays small
 * per GiB, and small enough that the chunks in flight between a layer's stages stay a few MiB: at 512 KiB a 1 GiB
 * encrypt measured 2.24 s and 124 MiB peak RSS, against 2.51 s and 132 MiB at 1 MiB.
 */
export const READ_CHUNK = 512 * 1024;

export class DirectoryFiles implements LayoutFiles {
  constructor(readonly root: string) {}

  describe(relPath: string): string {
    return path.join(this.root, relPath);
  }

  async exists(relPath: string): Promise<boolean> {
    try {
      await stat(this.describe(relPath));
      return true;
    } catch (e) {
      if (systemErrorCode(e) === 'ENOENT') return false;
      throw e;
    }
  }

  async open(relPath: string): Promise<Readable> {
    const file = this.describe(relPath);
    try {
      // Open first so a missing file is reported here, not as a stream error later.
      const handle = await open(file, 'r');
      return new FileChunkReader(handle, READ_CHUNK);
    } catch (e) {
      if (systemErrorCode(e) === 'ENOENT') throw new ImagegateError('NOT_FOUND', `${file} does not exist`);
      throw new ImagegateError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
  }

  async readFile(relPath: string, limit: number): Promise<Buffer> {
    return readAll(await this.open(relPath), limit, this.describe(relPath));
  }

  async close(): Promise<void> {}
}
