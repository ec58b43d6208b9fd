import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination } from '../image/image.js';
import { LayoutWriterDestination } from './layout-writer-destination.js';
import { OciLayoutWriter } from './oci-layout-writer.js';
import { createStagingDir } from './staging-owner.js';
import { stagingDirFor } from './staging-paths.js';
import { checkArchiveTarget, replaceFile, writeTarFile, type ArchiveMember } from './tar-pack.js';

/** Where an archive destination stages its blobs before packing them. */
export interface ArchiveStaging {
  target: string;
  staging: string;
  writer: OciLayoutWriter;
}

/**
 * Checks the target and names a staging layout beside it, so the final rename stays on one file system. The
 * directory itself is created on the first write (see LayoutWriterDestination).
 */
export async function openStaging(file: string, description: string): Promise<ArchiveStaging> {
  const target = path.resolve(file);
  await checkArchiveTarget(target, description);
  const staging = stagingDirFor(target);
  return { target, staging, writer: new OciLayoutWriter(staging) };
}

/**
 * A destination that is one archive file (oci-archive, docker-archive): blobs are staged as an OCI layout beside
 * the target, and `commit` packs what the format needs into a temporary file inside the staging directory that
 * then replaces the target at once. Nothing exists at the target until then, and `abort` removes the staging
 * directory with everything in it; so does a later run's sweep, when this one was killed.
 */
export abstract class StagedArchiveDestination extends LayoutWriterDestination implements ImageDestination {
  abstract readonly preservesLayerAnnotations: boolean;
  abstract readonly canStoreIndex: boolean;
  protected readonly target: string;
  protected readonly staging: string;

  constructor(
    readonly description: string,
    staged: ArchiveStaging,
  ) {
    super(staged.writer, async () => {
      try {
        await createStagingDir(staged.staging);
        await staged.writer.init();
      } catch (e) {
        await rm(staged.staging, { recursive: true, force: true });
        throw new ImagegateError('DESTINATION', `${description}: cannot create the staging directory ${staged.staging}: ${(e as Error).message}`, { cause: e });
      }
    });
    this.target = staged.target;
    this.staging = staged.staging;
  }

  abstract commit(root: Descriptor): Promise<void>;

  /** Packs `members` into the target, replacing it atomically, and removes the staging area. */
  protected async packIntoTarget(members: readonly ArchiveMember[]): Promise<void> {
    await this.ready();
    // Not a name any member has: members are oci-layout, index.json, manifest.json, blobs/… or digest-named files.
    const tmp = path.join(this.staging, '.archive.tmp');
    await writeTarFile(tmp, members, this.description);
    await replaceFile(tmp, this.target, this.description);
    await rm(this.staging, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    if (!this.started) return;
    await rm(this.staging, { recursive: true, force: true });
  }
}
