import type { Readable } from 'node:stream';
import type { StoredBlob } from '../image/image.js';
import type { OciLayoutWriter } from './oci-layout-writer.js';

/**
 * The blob side of a destination whose blobs land in an OCI layout on disk (a layout directory, or the staging
 * layout of an archive): reuse, blobs and manifests all go to the writer. The layout (for a new one, its staging
 * directory) is created on the first of these calls, not when the destination is opened: a run that fails before
 * it writes anything (a missing recipient, a source that does not exist) leaves nothing behind. Subclasses say how
 * to prepare the layout and how to commit.
 */
export abstract class LayoutWriterDestination {
  private prepared: Promise<void> | undefined;

  protected constructor(
    protected readonly writer: OciLayoutWriter,
    private readonly prepare: () => Promise<void>,
  ) {}

  /** Creates the layout once; every write waits for it. */
  protected ready(): Promise<void> {
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  /** Whether anything was (or began to be) written, so `abort` knows whether there is anything to remove. */
  protected get started(): boolean {
    return this.prepared !== undefined;
  }

  async reuseBlob(blob: StoredBlob): Promise<boolean> {
    await this.ready();
    return this.writer.hasBlob(blob);
  }

  async putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    try {
      await this.ready();
    } catch (e) {
      // Nobody will read it now; leaving it open would keep its file open too.
      content.destroy();
      throw e;
    }
    return this.writer.putBlob(content, expected);
  }

  async putManifest(bytes: Buffer): Promise<StoredBlob> {
    await this.ready();
    return this.writer.putBytes(bytes);
  }
}
