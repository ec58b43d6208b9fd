import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { DigestingStream, digestAlgorithm } from '../image/digest.js';
import type { Descriptor } from '../image/descriptor.js';
import type { StoredBlob } from '../image/image.js';
import { MediaType } from '../image/media-types.js';
import { serialize } from '../image/manifest.js';
import { FileSink } from '../util/file-chunks.js';
import { blobPath, REF_NAME_ANNOTATION } from './oci-layout-source.js';

const LAYOUT_HEADER = '{"imageLayoutVersion":"1.0.0"}';

/**
 * Writes blobs into an OCI image layout directory the safe way: stream into a temporary file beside the final
 * one while hashing, check digest and size, then rename. A blob file therefore only ever holds content that
 * matches its name. Remembers what it created so a failed run can remove it again.
 */
export class OciLayoutWriter {
  private readonly created = new Set<string>();

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await mkdir(path.join(this.root, 'blobs', 'sha256'), { recursive: true });
    const header = path.join(this.root, 'oci-layout');
    if (!(await exists(header))) {
      await writeFile(header, LAYOUT_HEADER);
      this.created.add(header);
    }
  }

  async hasBlob(blob: StoredBlob): Promise<boolean> {
    try {
      return (await stat(path.join(this.root, blobPath(blob)))).size === blob.size;
    } catch {
      return false;
    }
  }

  async putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    const algorithm = expected !== undefined ? digestAlgorithm(expected.digest) : 'sha256';
    const dir = path.join(this.root, 'blobs', algorithm);
    await mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    const digesting = new DigestingStream(algorithm);
    try {
      await pipeline(content, digesting, new FileSink(await open(tmp, 'wx')));
      const stored = { digest: digesting.digest(), size: digesting.size };
      if (expected !== undefined && (stored.digest !== expected.digest || stored.size !== expected.size)) {
        throw new ImagegateError(
          'DIGEST_MISMATCH',
          `blob ${expected.digest} (${expected.size} bytes) arrived as ${stored.digest} (${stored.size} bytes); the source is corrupt`,
        );
      }
      const final = path.join(this.root, blobPath(stored));
      if (await exists(final)) {
        // Already present (and named by its content): keep the existing file, which other images may share.
        await rm(tmp, { force: true });
        return stored;
      }
      await rename(tmp, final);
      this.created.add(final);
      return stored;
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Writes a small document (manifest, index) as a blob. */
  async putBytes(bytes: Buffer): Promise<StoredBlob> {
    return this.putBlob(Readable.from([bytes]));
  }

  /** Removes every file this writer created. */
  async removeCreated(): Promise<void> {
    for (const f of this.created) await rm(f, { force: true });
    this.created.clear();
  }

  /** Replaces index.json atomically with `entries`. */
  async writeIndex(entries: Descriptor[]): Promise<void> {
    const json = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries };
    const file = path.join(this.root, 'index.json');
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, serialize(json));
    await rename(tmp, file);
  }
}

/** The index.json entry that names `root`, tagged when a tag is given. */
export function layoutIndexEntry(root: Descriptor, tag: string | undefined): Descriptor {
  const entry: Descriptor = { mediaType: root.mediaType, digest: root.digest, size: root.size };
  if (tag !== undefined) entry.annotations = { [REF_NAME_ANNOTATION]: tag };
  return entry;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT') return false;
    throw new ImagegateError('IO', `cannot access ${p}: ${(e as Error).message}`, { cause: e });
  }
}
