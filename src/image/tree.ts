import { ImagegateError } from '../errors.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform } from './descriptor.js';
import type { BlobReader, ImageNode } from './image.js';
import { documentKind, parseIndex, parseManifest } from './manifest.js';
import { isIndexMediaType, isManifestMediaType } from './media-types.js';

/** Nested indexes deeper than this are refused: real images use one or two levels. */
const MAX_DEPTH = 8;
/**
 * Entries a whole tree may list, counting each time an index lists a document. A multi-platform image with
 * attestations lists a few dozen; the bound stops an index graph built to fan out (eight indexes each listing the
 * previous one four times name 4^8 images while being 8 documents).
 */
export const MAX_TREE_ENTRIES = 1024;

/**
 * Loads the manifests and indexes under `desc` (not configs or layers). Every document is read through the
 * source's verified `readManifest`, so the tree is exactly what the root digest names. A document listed several
 * times is fetched once, and the tree may list at most {@link MAX_TREE_ENTRIES} entries.
 */
export function loadImageTree(reader: BlobReader, desc: Descriptor, where: string): Promise<ImageNode> {
  return new TreeLoad(reader, where).node(desc, 0);
}

class TreeLoad {
  private entries = 0;
  /**
   * Documents by digest and media type, each read and parsed once however often the graph lists it, with the number
   * of entries its subtree lists, which count again at every listing.
   */
  private readonly loaded = new Map<string, Promise<{ node: ImageNode; size: number }>>();

  constructor(
    private readonly reader: BlobReader,
    private readonly where: string,
  ) {}

  async node(desc: Descriptor, depth: number): Promise<ImageNode> {
    return (await this.listed(desc, depth)).node;
  }

  private async listed(desc: Descriptor, depth: number): Promise<{ node: ImageNode; size: number }> {
    if (depth > MAX_DEPTH) throw new ImagegateError('BAD_FORMAT', `${this.where}: indexes nested more than ${MAX_DEPTH} deep`);
    const known = isManifestMediaType(desc.mediaType) || isIndexMediaType(desc.mediaType);
    // Artifacts and unknown documents inside an index are kept whole, byte for byte.
    if (!known && depth > 0) return this.count({ node: { kind: 'opaque' as const, descriptor: desc }, size: 1 });
    const id = `${desc.digest} ${desc.mediaType}`;
    let loading = this.loaded.get(id);
    const first = loading === undefined;
    if (loading === undefined) {
      loading = this.load(desc, known, depth);
      this.loaded.set(id, loading);
    }
    const { node, size } = await loading;
    // The first listing counted its subtree while loading it; every other listing adds it again.
    if (!first) this.count({ node, size });
    // The node carries the descriptor it was listed with (its platform), so each listing gets its own.
    return { node: node.descriptor === desc ? node : { ...node, descriptor: desc }, size };
  }

  private count<T extends { size: number }>(listed: T): T {
    this.entries += listed.size;
    if (this.entries > MAX_TREE_ENTRIES) {
      throw new ImagegateError('BAD_FORMAT', `${this.where}: its indexes list more than ${MAX_TREE_ENTRIES} manifests in all, more than any real image; refusing to walk it`);
    }
    return listed;
  }

  private async load(desc: Descriptor, known: boolean, depth: number): Promise<{ node: ImageNode; size: number }> {
    const bytes = await this.reader.readManifest(desc);
    const docWhere = `${this.where}: ${desc.digest}`;
    const kind = documentKind(bytes, known ? desc.mediaType : undefined, docWhere);
    if (kind === 'manifest') {
      return this.count({ node: { kind, descriptor: desc, bytes, manifest: parseManifest(bytes, docWhere, desc.mediaType) }, size: 1 });
    }
    const index = parseIndex(bytes, docWhere, desc.mediaType);
    this.count({ size: 1 });
    const children: ImageNode[] = [];
    let size = 1;
    for (const child of index.manifests) {
      const listed = await this.listed(child, depth + 1);
      children.push(listed.node);
      size += listed.size;
    }
    return { node: { kind, descriptor: desc, bytes, index, children }, size };
  }
}

/** Every image manifest in the tree, depth first, with the platform its index entry declares. */
export function manifestsOf(node: ImageNode): Array<{ node: Extract<ImageNode, { kind: 'manifest' }>; platform: Descriptor['platform'] }> {
  const out: Array<{ node: Extract<ImageNode, { kind: 'manifest' }>; platform: Descriptor['platform'] }> = [];
  const walk = (n: ImageNode, platform: Descriptor['platform']): void => {
    if (n.kind === 'manifest') out.push({ node: n, platform: n.descriptor.platform ?? platform });
    else if (n.kind === 'index') for (const c of n.children) walk(c, c.descriptor.platform);
  };
  walk(node, node.descriptor.platform);
  return out;
}

/** The image of `platform` in a tree: the index entry that matches it, or the single image a manifest is. */
export function selectPlatformManifest(root: ImageNode, platform: Platform, where: string): { node: Extract<ImageNode, { kind: 'manifest' }>; platform: Descriptor['platform'] } {
  const manifests = manifestsOf(root);
  const chosen = root.kind === 'index' ? manifests.filter((m) => platformMatches(platform, m.platform)) : manifests;
  if (chosen.length === 0) {
    const available = manifests.map((m) => formatPlatform(m.platform)).join(', ');
    throw new ImagegateError('NOT_FOUND', `${where} has no image for ${formatPlatform(platform)} (it has ${available}); this pod cannot run here`);
  }
  return chosen[0]!;
}
