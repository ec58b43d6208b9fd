import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { OciLayoutSource, selectByRefName } from './oci-layout-source.js';
import { layoutIndexEntry } from './oci-layout-writer.js';
import { openStaging, StagedArchiveDestination, type ArchiveStaging } from './staged-archive-destination.js';
import { TarFiles } from './tar-index.js';
import type { ArchiveMember } from './tar-pack.js';

/**
 * `oci-archive:FILE[:TAG]`: an OCI image layout packed into a plain tar file, as skopeo reads and writes it.
 * Reading indexes the tar and streams blobs straight out of it; writing builds the layout in a staging
 * directory beside FILE and packs it into FILE on commit.
 */
export async function openOciArchiveSource(file: string, tag: string | undefined, description: string): Promise<ImageSource> {
  const files = await TarFiles.open(file);
  try {
    if (!(await files.exists('oci-layout'))) {
      const hint = (await files.exists('manifest.json')) ? ` It looks like \`docker save\` output: use docker-archive:${file} instead.` : '';
      throw new ImagegateError('BAD_FORMAT', `${description}: ${file} is not an OCI archive: it has no oci-layout file.${hint}`);
    }
  } catch (e) {
    await files.close();
    throw e;
  }
  return new OciLayoutSource(files, description, selectByRefName(tag));
}

export async function openOciArchiveDestination(file: string, tag: string | undefined, description: string): Promise<ImageDestination> {
  return new OciArchiveDestination(description, await openStaging(file, description), tag);
}

class OciArchiveDestination extends StagedArchiveDestination {
  readonly preservesLayerAnnotations = true;
  readonly canStoreIndex = true;

  constructor(
    description: string,
    staged: ArchiveStaging,
    private readonly tag: string | undefined,
  ) {
    super(description, staged);
  }

  async commit(root: Descriptor): Promise<void> {
    await this.writer.writeIndex([layoutIndexEntry(root, this.tag)]);
    const members: ArchiveMember[] = [
      { name: 'oci-layout', file: path.join(this.staging, 'oci-layout') },
      { name: 'index.json', file: path.join(this.staging, 'index.json') },
      { name: 'blobs', directory: true },
    ];
    const blobs = path.join(this.staging, 'blobs');
    for (const algorithm of (await readdir(blobs)).sort()) {
      members.push({ name: `blobs/${algorithm}`, directory: true });
      for (const name of (await readdir(path.join(blobs, algorithm))).sort()) {
        if (name.startsWith('.')) continue; // a temporary file of an interrupted putBlob, not a blob
        members.push({ name: `blobs/${algorithm}/${name}`, file: path.join(blobs, algorithm, name) });
      }
    }
    await this.packIntoTarget(members);
  }
}
