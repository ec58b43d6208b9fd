import { formatPlatform } from '../image/descriptor.js';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { manifestEncryption } from '../crypto/layer-recipients.js';
import { podModelFacts, type PodModelFacts } from '../pod-model/pod-image.js';
import type { PlatformImageFacts } from '../policy/types.js';
import type { RegistryHttp } from '../transport/registry/http.js';
import { RegistrySource } from '../transport/registry/registry-source.js';

/** What admission needs to know about an image: where it lives, what digest it is, and how each platform is encrypted. */
export interface ResolvedImage {
  repository: string;
  digest: string;
  /** Set when the image was encrypted for the pod model (single-platform images). */
  pod?: PodModelFacts;
  platforms: PlatformImageFacts[];
}

/**
 * Resolves an image reference to its digest and reads its manifests (never its layers): per platform, how many
 * layers are encrypted, with which schemes and Vault keys.
 */
export async function resolveImage(image: string, connect: (ref: ImageReference) => Promise<RegistryHttp>, signal?: AbortSignal): Promise<ResolvedImage> {
  const ref = parseImageReference(image);
  const source = RegistrySource.over(ref, await connect(ref), signal);
  try {
    const root = await source.rootDescriptor();
    const tree = await loadImageTree(source, root, source.description);
    const platforms = manifestsOf(tree).map(({ node, platform }) => ({
      ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}),
      ...manifestEncryption(node.manifest.layers),
    }));
    const pod = await podModelFacts(source, manifestsOf(tree));
    return { repository: canonicalRepository(ref), digest: root.digest, platforms, ...(pod !== undefined ? { pod } : {}) };
  } finally {
    await source.close();
  }
}
