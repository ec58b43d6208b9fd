import type { Readable } from 'node:stream';
import type { StoredBlob } from '../image/image.js';
import type { OciLayoutWriter } from './oci-layout-writer.js';

/**
 * The blob side of a destination whose blobs land in an OCI layout on disk (a layout directory, or the staging
 * layout of an archive): reuse, blobs and manifests all go to the writer. Subclasses say how to commit.
 */
export abstract class LayoutWriterDestination {
  protected constructor(protected readonly writer: OciLayoutWriter) {}

  reuseBlob(blob: StoredBlob): Promise<boolean> {
    return this.writer.hasBlob(blob);
  }

  putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    return this.writer.putBlob(content, expected);
  }

  putManifest(bytes: Buffer): Promise<StoredBlob> {
    return this.writer.putBytes(bytes);
  }
}
