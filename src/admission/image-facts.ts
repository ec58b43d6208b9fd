import { VAULT_ANNOTATION, vaultKeysOf } from '../crypto/wrappers/vault.js';
import { formatPlatform } from '../image/descriptor.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { parseImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { layerRecipients } from '../ops/recipients.js';
import type { PlatformImageFacts } from '../policy/types.js';
import type { RegistryOptions } from '../transport/registry/location.js';
import { RegistrySource } from '../transport/registry/registry-source.js';

/** What admission needs to know about an image: where it lives, what digest it is, and how each platform is encrypted. */
export interface ResolvedImage {
  repository: string;
  digest: string;
  platforms: PlatformImageFacts[];
}

/**
 * Resolves an image reference to its digest and reads its manifests (never its layers): per platform, how many
 * layers are encrypted, with which schemes and Vault keys.
 */
export async function resolveImage(image: string, registry: RegistryOptions): Promise<ResolvedImage> {
  const ref = parseImageReference(image);
  const source = await RegistrySource.open(ref, registry);
  try {
    const root = await source.rootDescriptor();
    const tree = await loadImageTree(source, root, source.description);
    const platforms = manifestsOf(tree).map(({ node, platform }) => {
      const encrypted = node.manifest.layers.filter((l) => isEncryptedMediaType(l.mediaType));
      return {
        ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}),
        layers: node.manifest.layers.length,
        encryptedLayers: encrypted.length,
        schemes: [...new Set(encrypted.flatMap((l) => layerRecipients(l.annotations).map((s) => s.scheme)))].sort(),
        vaultKeys: encrypted.flatMap((l) => vaultKeysOf(l.annotations?.[VAULT_ANNOTATION])),
      };
    });
    return { repository: `${ref.domain}/${ref.path}`, digest: root.digest, platforms };
  } finally {
    await source.close();
  }
}
