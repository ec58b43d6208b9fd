import { splitAnnotationItems, type RecipientSummary } from '../crypto/key-wrapper.js';
import { keyAnnotations, keyWrapper } from '../crypto/wrappers/registry.js';
import { describeVaultItem, VAULT_ANNOTATION, VAULT_SCHEME, vaultKeysOf, type WrappedKeyReference } from '../crypto/wrappers/vault.js';
import type { Descriptor } from '../image/descriptor.js';
import { isEncryptedMediaType } from '../image/media-types.js';

export interface SchemeRecipients {
  scheme: string;
  /** Wrapped items in the annotation (more than one after recipients were added later). */
  items: number;
  /** Empty when this build cannot read the scheme's recipients. */
  recipients: RecipientSummary[];
}

/** What the key annotations of a layer tell about its recipients, without any key. */
export function layerRecipients(annotations: Record<string, string> | undefined): SchemeRecipients[] {
  return keyAnnotations(annotations).map(([scheme, value]) => {
    const items = splitAnnotationItems(value);
    const describe = scheme === VAULT_SCHEME ? describeVaultItem : keyWrapper(scheme)?.describe.bind(keyWrapper(scheme));
    const recipients: RecipientSummary[] = [];
    if (describe !== undefined) {
      for (const item of items) {
        if (item instanceof Error) continue;
        try {
          recipients.push(...describe(item));
        } catch {
          // an unreadable item shows up as a count without recipients
        }
      }
    }
    return { scheme, items: items.length, recipients };
  });
}

/** `jwe (2 recipients: RSA-OAEP, ECDH-ES+A256KW P-256)` */
export function describeRecipients(annotations: Record<string, string> | undefined): string {
  return layerRecipients(annotations)
    .map((s) => {
      if (s.recipients.length === 0) return s.scheme;
      const list = s.recipients.map((r) => (r.detail !== undefined ? `${r.algorithm} ${r.detail}` : r.algorithm)).join(', ');
      return `${s.scheme} (${s.recipients.length} recipient${s.recipients.length === 1 ? '' : 's'}: ${list})`;
    })
    .join(', ');
}

/** How one image's layers are encrypted, read from its manifest alone: what inspect, audit and admission report. */
export interface ManifestEncryption {
  layers: number;
  encryptedLayers: number;
  /** Schemes of the encrypted layers, e.g. `jwe`, `provider.imagegate`, sorted. */
  schemes: string[];
  /** The Vault-wrapped keys of the encrypted layers, one entry per wrapped item. */
  vaultKeys: WrappedKeyReference[];
  /** Encrypted layers with no readable Vault-wrapped key. */
  layersWithoutVaultKey: number;
}

export function manifestEncryption(layers: readonly Descriptor[]): ManifestEncryption {
  const encrypted = layers.filter((l) => isEncryptedMediaType(l.mediaType));
  const vaultKeysPerLayer = encrypted.map((l) => vaultKeysOf(l.annotations?.[VAULT_ANNOTATION]));
  return {
    layers: layers.length,
    encryptedLayers: encrypted.length,
    schemes: [...new Set(encrypted.flatMap((l) => layerRecipients(l.annotations).map((s) => s.scheme)))].sort(),
    vaultKeys: vaultKeysPerLayer.flat(),
    layersWithoutVaultKey: vaultKeysPerLayer.filter((keys) => keys.length === 0).length,
  };
}
