import type { Readable } from 'node:stream';
import { ImagegateError } from '../errors.js';
import { digestAlgorithm, digestHex } from '../image/digest.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageSource } from '../image/image.js';
import { MAX_MANIFEST_BYTES, parseIndex } from '../image/manifest.js';
import { JsonReader, parseJson } from '../image/validate.js';
import type { LayoutFiles } from './layout-files.js';
import { readVerifiedBlob, verifiedBlobStream } from './verified-blob.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** Chooses the image among the entries of a layout's index.json. */
export type LayoutEntrySelector = (entries: Descriptor[], where: string) => Descriptor;

/** `oci:DIR:TAG` picks the entry whose ref.name is TAG; `oci:DIR` needs a layout that holds exactly one image. */
export function selectByRefName(tag: string | undefined): LayoutEntrySelector {
  return (entries, where) => {
    if (tag !== undefined) {
      const found = entries.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === tag);
      if (found.length === 0) {
        throw new ImagegateError('NOT_FOUND', `${where} has no image tagged ${JSON.stringify(tag)}; it has ${describeTags(entries)}`);
      }
      return found[found.length - 1]!;
    }
    if (entries.length !== 1) {
      throw new ImagegateError(
        'USAGE',
        `${where} holds ${entries.length} images; name one with :TAG (it has ${describeTags(entries)})`,
      );
    }
    return entries[0]!;
  };
}

function describeTags(entries: Descriptor[]): string {
  const tags = entries.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((t): t is string => t !== undefined);
  if (entries.length === 0) return 'no images';
  return tags.length > 0 ? `tags ${tags.map((t) => JSON.stringify(t)).join(', ')}` : `${entries.length} untagged image(s)`;
}

/** Reads `index.json` of an OCI image layout, validated. */
export async function readLayoutIndex(files: LayoutFiles): Promise<Descriptor[]> {
  if (!(await files.exists('oci-layout'))) {
    throw new ImagegateError('BAD_FORMAT', `${files.describe('')} is not an OCI image layout: it has no oci-layout file`);
  }
  const header = new JsonReader(files.describe('oci-layout'), parseJson(await files.readFile('oci-layout', 64 * 1024), files.describe('oci-layout')));
  const version = header.field('imageLayoutVersion').string();
  if (!/^1\.\d+\.\d+$/.test(version)) header.field('imageLayoutVersion').fail(`must be 1.x.y, got ${JSON.stringify(version)}`);
  const where = files.describe('index.json');
  return parseIndex(await files.readFile('index.json', MAX_MANIFEST_BYTES), where).manifests;
}

/** The path of a blob inside a layout. */
export function blobPath(desc: { digest: Descriptor['digest'] }): string {
  return `blobs/${digestAlgorithm(desc.digest)}/${digestHex(desc.digest)}`;
}

/** An image inside an OCI image layout, wherever the layout's files are. */
export class OciLayoutSource implements ImageSource {
  constructor(
    private readonly files: LayoutFiles,
    readonly description: string,
    private readonly select: LayoutEntrySelector,
  ) {}

  async rootDescriptor(): Promise<Descriptor> {
    const entries = await readLayoutIndex(this.files);
    return this.select(entries, this.description);
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const file = blobPath(desc);
    let raw: Readable;
    try {
      raw = await this.files.open(file);
    } catch (e) {
      if (e instanceof ImagegateError && e.code === 'NOT_FOUND') {
        throw new ImagegateError('NOT_FOUND', `${this.description} is incomplete: blob ${desc.digest} (${desc.mediaType}) is missing at ${this.files.describe(file)}`);
      }
      throw e;
    }
    return verifiedBlobStream(raw, desc);
  }

  readBlob(desc: Descriptor, limit = MAX_MANIFEST_BYTES): Promise<Buffer> {
    return readVerifiedBlob((d) => this.openBlob(d), desc, limit, this.description);
  }

  readManifest(desc: Descriptor): Promise<Buffer> {
    return this.readBlob(desc, MAX_MANIFEST_BYTES);
  }

  async close(): Promise<void> {
    await this.files.close();
  }
}
