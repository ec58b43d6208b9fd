import { ImagegateError } from '../errors.js';
import { unwrapLayerOptions } from '../crypto/layer-crypto.js';
import { layerKeyReferences, manifestEncryption } from '../crypto/layer-recipients.js';
import type { Keyring } from '../crypto/schemes/keyring.js';
import { formatPlatform, type Platform } from '../image/descriptor.js';
import type { ImageSource } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { loadImageTree, selectPlatformManifest } from '../image/tree.js';

export interface KeyAccess {
  image: string;
  /** The platform checked, or undefined for a single-platform image. */
  platform?: string;
  layers: number;
  encryptedLayers: number;
  /** `transit/keys/NAME vN`, for each key that unwrapped. */
  keys: string[];
}

/** The platform this process runs on, in OCI terms, which is the pod's. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture: arch[process.arch] ?? process.arch };
}

/**
 * Proves that this process's Vault identity can unwrap the key of every encrypted layer of `platform`'s image
 * (all of them, not just the first, and not other platforms'), without reading any layer bytes. All layers go to
 * Vault in one batch. Unwrapped keys are wiped at once; nothing is kept. Throws, naming the layer, key and Vault's
 * answer, when one does not unwrap or is wrapped only by a scheme that cannot be proven here.
 */
export async function checkKeyAccess(source: ImageSource, platform: Platform, keyring: Keyring): Promise<KeyAccess> {
  const root = await loadImageTree(source, await source.rootDescriptor(), source.description);
  const { node, platform: found } = selectPlatformManifest(root, platform, source.description);
  const layers = node.manifest.layers;
  // Only what the key service answers proves access: a key file on this machine is not the pod's identity.
  const serviceKeyring = keyring.sessionsOnly();
  const encrypted = layers.map((l, index) => ({ l, index })).filter(({ l }) => isEncryptedMediaType(l.mediaType));
  await Promise.all(
    encrypted.map(async ({ l, index }) => {
      const label = `${source.description}${found !== undefined ? ` ${formatPlatform(found)}` : ''} layer ${index} (${l.digest})`;
      if (layerKeyReferences(l.annotations).length === 0) {
        throw new ImagegateError('NO_MATCHING_KEY', `${label} has no Vault-wrapped key, so access cannot be proven with this pod's identity; encrypt it with -r vault:KEY`);
      }
      const opts = await unwrapLayerOptions(label, l.annotations ?? {}, serviceKeyring);
      opts.fill(0);
    }),
  );
  const keys = [...new Set(manifestEncryption(layers).serviceKeys.map((k) => `${k.key} v${k.version}`))].sort();
  return {
    image: source.description,
    ...(found !== undefined ? { platform: formatPlatform(found) } : {}),
    layers: layers.length,
    encryptedLayers: encrypted.length,
    keys,
  };
}
