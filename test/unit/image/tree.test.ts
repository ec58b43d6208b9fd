import { describe, expect, it } from 'vitest';
import type { Descriptor } from '../../../src/image/descriptor.js';
import { sha256Digest } from '../../../src/image/digest.js';
import type { BlobReader } from '../../../src/image/image.js';
import { MediaType } from '../../../src/image/media-types.js';
import { loadImageTree, manifestsOf, MAX_TREE_ENTRIES } from '../../../src/image/tree.js';

/** Documents in memory, counting how often each is read: what a registry would serve. */
class Documents implements BlobReader {
  readonly reads = new Map<string, number>();
  private readonly blobs = new Map<string, Buffer>();

  add(json: object, mediaType: string): Descriptor {
    const bytes = Buffer.from(JSON.stringify(json));
    const digest = sha256Digest(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.length };
  }

  async readManifest(desc: Descriptor): Promise<Buffer> {
    this.reads.set(desc.digest, (this.reads.get(desc.digest) ?? 0) + 1);
    return this.blobs.get(desc.digest)!;
  }

  readBlob(desc: Descriptor): Promise<Buffer> {
    return this.readManifest(desc);
  }

  openBlob(): never {
    throw new Error('no layer is read');
  }
}

const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(Buffer.from('{}')), size: 2 };

function image(docs: Documents, seed: number): Descriptor {
  const layer = { mediaType: MediaType.OciLayerGzip, digest: sha256Digest(Buffer.from(String(seed))), size: 1 };
  return docs.add({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }, MediaType.OciManifest);
}

function index(docs: Documents, children: Descriptor[]): Descriptor {
  return docs.add({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }, MediaType.OciIndex);
}

describe('loadImageTree', () => {
  it('refuses an index graph built to fan out, after reading each document once', async () => {
    // Eight indexes, each listing the previous one four times: 8 documents that name 4^8 images.
    const docs = new Documents();
    let top = image(docs, 1);
    for (let level = 0; level < 7; level++) top = index(docs, [top, top, top, top]);
    await expect(loadImageTree(docs, top, 'docker://reg/x:1')).rejects.toThrow(`list more than ${MAX_TREE_ENTRIES} manifests in all`);
    expect(Math.max(...docs.reads.values())).toBe(1);
    expect(docs.reads.size).toBeLessThanOrEqual(8);
  });

  it('reads a document listed twice once, and keeps each listing with its own descriptor (platform)', async () => {
    const docs = new Documents();
    const one = image(docs, 2);
    const amd = { ...one, platform: { os: 'linux', architecture: 'amd64' } };
    const arm = { ...one, platform: { os: 'linux', architecture: 'arm64' } };
    const root = index(docs, [amd, arm]);
    const tree = await loadImageTree(docs, root, 'docker://reg/x:1');
    expect(manifestsOf(tree).map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);
    expect(docs.reads.get(one.digest)).toBe(1);
  });
});
