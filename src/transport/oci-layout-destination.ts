import { readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination } from '../image/image.js';
import { DirectoryFiles } from './layout-files.js';
import { readLayoutIndex, REF_NAME_ANNOTATION } from './oci-layout-source.js';
import { LayoutWriterDestination } from './layout-writer-destination.js';
import { exists, layoutIndexEntry, OciLayoutWriter } from './oci-layout-writer.js';
import { createStagingDir, releaseStagingDir } from './staging-owner.js';
import { stagingDirFor } from './staging-paths.js';

/**
 * `oci:DIR[:TAG]` as a destination. A new layout is built in a hidden sibling directory and renamed into place
 * on commit; an existing layout gets new blobs in place (each written atomically) and its index.json replaced
 * last, and a failed run removes the blobs it added. Either way a failure leaves no new image behind, and a run
 * that fails before its first write creates nothing at all.
 */
export class OciLayoutDestination extends LayoutWriterDestination implements ImageDestination {
  readonly preservesLayerAnnotations = true;
  readonly canStoreIndex = true;
  private committed = false;

  private constructor(
    readonly description: string,
    private readonly dir: string,
    private readonly tag: string | undefined,
    writer: OciLayoutWriter,
    private readonly staging: string | undefined,
  ) {
    super(writer, async () => {
      if (staging !== undefined) await createStagingDir(staging);
      await writer.init();
    });
  }

  /** Checks the target; creates nothing yet (see LayoutWriterDestination). */
  static async open(dir: string, tag: string | undefined, description: string): Promise<OciLayoutDestination> {
    const target = path.resolve(dir);
    let staging: string | undefined;
    let root = target;
    if (await exists(target)) {
      const isLayout = await exists(path.join(target, 'oci-layout'));
      const empty = !isLayout && (await readdir(target)).length === 0;
      if (!isLayout && !empty) {
        throw new ImagegateError('DESTINATION', `${description}: ${target} exists and is not an OCI image layout; choose a new or empty directory`);
      }
      if (empty) staging = root = stagingDirFor(target);
    } else {
      staging = root = stagingDirFor(target);
    }
    return new OciLayoutDestination(description, target, tag, new OciLayoutWriter(root), staging);
  }

  async commit(root: Descriptor): Promise<void> {
    await this.ready();
    const entry = layoutIndexEntry(root, this.tag);
    if (this.staging !== undefined) {
      await this.writer.writeIndex([entry]);
      // The owner record belongs to the staging directory, not to the layout it becomes.
      await releaseStagingDir(this.staging);
      // rename(2) replaces an empty directory, so an empty target is fine too.
      await rename(this.staging, this.dir);
      this.committed = true;
      return;
    }
    const existing = await readLayoutIndex(new DirectoryFiles(this.dir));
    const kept = existing.filter((d) => this.tag === undefined || d.annotations?.[REF_NAME_ANNOTATION] !== this.tag);
    await this.writer.writeIndex([...kept, entry]);
    this.committed = true;
  }

  async abort(): Promise<void> {
    if (this.committed || !this.started) return;
    if (this.staging !== undefined) await rm(this.staging, { recursive: true, force: true });
    else await this.writer.removeCreated();
  }
}
