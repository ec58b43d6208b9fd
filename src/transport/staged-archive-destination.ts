import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination } from '../image/image.js';
import { LayoutWriterDestination } from './layout-writer-destination.js';
import { OciLayoutWriter } from './oci-layout-writer.js';
import { stagingDirFor, tempFileFor } from './staging-paths.js';
import { checkArchiveTarget, replaceFile, writeTarFile, type ArchiveMember } from './tar-pack.js';

/** Where an archive destination stages its blobs before packing them. */
export interface ArchiveStaging {
  target: string;
  staging: string;
  writer: OciLayoutWriter;
}

/** Checks the target and creates a staging layout beside it, so the final rename stays on one file system. */
export async function openStaging(file: string, description: string): Promise<ArchiveStaging> {
  const target = path.resolve(file);
  await checkArchiveTarget(target, description);
  const staging = stagingDirFor(target);
  const writer = new OciLayoutWriter(staging);
  try {
    await writer.init();
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw new ImagegateError('DESTINATION', `${description}: cannot create the staging directory ${staging}: ${(e as Error).message}`, { cause: e });
  }
  return { target, staging, writer };
}

/**
 * A destination that is one archive file (oci-archive, docker-archive): blobs are staged as an OCI layout beside
 * the target, and `commit` packs what the format needs into a temporary file that replaces the target at once.
 * Nothing exists at the target until then, and `abort` removes the staging area and the temporary file.
 */
export abstract class StagedArchiveDestination extends LayoutWriterDestination implements ImageDestination {
  abstract readonly canStoreEncryptedLayers: boolean;
  abstract readonly canStoreIndex: boolean;
  protected readonly target: string;
  protected readonly staging: string;
  private readonly tmp: string;

  constructor(
    readonly description: string,
    staged: ArchiveStaging,
  ) {
    super(staged.writer);
    this.target = staged.target;
    this.staging = staged.staging;
    this.tmp = tempFileFor(staged.target);
  }

  abstract commit(root: Descriptor): Promise<void>;

  /** Packs `members` into the target, replacing it atomically, and removes the staging area. */
  protected async packIntoTarget(members: readonly ArchiveMember[]): Promise<void> {
    await writeTarFile(this.tmp, members, this.description);
    await replaceFile(this.tmp, this.target, this.description);
    await rm(this.staging, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
    await rm(this.tmp, { force: true });
  }
}
