import { ImagegateError } from '../errors.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform } from './descriptor.js';
import type { BlobReader, ImageNode } from './image.js';
import { documentKind, parseIndex, parseManifest } from './manifest.js';
import { isIndexMediaType, isManifestMediaType } from './media-types.js';

/** Nested indexes deeper than this are refused: real images use one or two levels. */
const MAX_DEPTH = 8;

/**
 * Loads the manifests and indexes under `desc` (not configs or layers). Every document is read through the
 * source's verified `readManifest`, so the tree is exactly what the root digest names.
 */
export async function loadImageTree(reader: BlobReader, desc: Descriptor, where: string, depth = 0): Promise<ImageNode> {
  if (depth > MAX_DEPTH) throw new ImagegateError('BAD_FORMAT', `${where}: indexes nested more than ${MAX_DEPTH} deep`);
  const known = isManifestMediaType(desc.mediaType) || isIndexMediaType(desc.mediaType);
  if (!known && depth > 0) {
    // Artifacts and unknown documents inside an index are kept whole, byte for byte.
    return { kind: 'opaque', descriptor: desc };
  }
  const bytes = await reader.readManifest(desc);
  const docWhere = `${where}: ${desc.digest}`;
  const kind = documentKind(bytes, known ? desc.mediaType : undefined, docWhere);
  if (kind === 'manifest') {
    return { kind, descriptor: desc, bytes, manifest: parseManifest(bytes, docWhere, desc.mediaType) };
  }
  const index = parseIndex(bytes, docWhere, desc.mediaType);
  const children: ImageNode[] = [];
  for (const child of index.manifests) children.push(await loadImageTree(reader, child, where, depth + 1));
  return { kind, descriptor: desc, bytes, index, children };
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
