import { formatPlatform, type Descriptor } from '../image/descriptor.js';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { manifestEncryption } from '../crypto/layer-recipients.js';
import { readPodModel, type PodModelFacts } from '../pod-model/pod-image.js';
import type { PlatformImageFacts } from '../policy/types.js';
import type { RegistryHttp } from '../transport/registry/http.js';
import { RegistrySource } from '../transport/registry/registry-source.js';

/** What admission needs to know about an image: where it lives, what digest it is, and how each platform is encrypted. */
export interface ResolvedImage {
  repository: string;
  digest: string;
  /** Set when the image was encrypted for the pod model (single-platform images) and its base checks out. */
  pod?: PodModelFacts;
  /** Why an image that says it is a pod-model image cannot run as one (its base is not what it claims). */
  podProblem?: string;
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
    const manifests = manifestsOf(tree);
    const platforms = manifests.map(({ node, platform }) => ({
      ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}),
      ...manifestEncryption(node.manifest.layers),
    }));
    const pod = await readPodModel(source, manifests, (base) => singleManifestLayers(base, connect, signal));
    const podFields = pod === undefined ? {} : 'facts' in pod ? { pod: pod.facts } : { podProblem: pod.problem };
    return { repository: canonicalRepository(ref), digest: root.digest, platforms, ...podFields };
  } finally {
    await source.close();
  }
}

/** The layers of a single-platform image (a pod-model base); undefined for an index of several. */
async function singleManifestLayers(ref: ImageReference, connect: (ref: ImageReference) => Promise<RegistryHttp>, signal?: AbortSignal): Promise<readonly Descriptor[] | undefined> {
  const source = RegistrySource.over(ref, await connect(ref), signal);
  try {
    const manifests = manifestsOf(await loadImageTree(source, await source.rootDescriptor(), source.description));
    return manifests.length === 1 ? manifests[0]!.node.manifest.layers : undefined;
  } finally {
    await source.close();
  }
}
