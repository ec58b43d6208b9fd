import type { Descriptor } from '../image/descriptor.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { splitAnnotationItems } from './schemes/annotation-items.js';
import type { KeyScheme, RecipientSummary, WrappedKeyReference } from './schemes/key-scheme.js';
import { keyAnnotations } from './schemes/registry.js';

export interface SchemeRecipients {
  scheme: string;
  /** Wrapped items in the annotation (more than one after recipients were added later). */
  items: number;
  /** Empty when this build cannot read the scheme's recipients. */
  recipients: RecipientSummary[];
}

/** The readable items of an annotation, each through `read`; an unreadable item is left out, not fatal. */
function readItems<T>(value: string, read: (item: Buffer) => T[]): T[] {
  return splitAnnotationItems(value).flatMap((item) => {
    if (item instanceof Error) return [];
    try {
      return read(item);
    } catch {
      return [];
    }
  });
}

/** What the key annotations of a layer tell about its recipients, without any key. */
export function layerRecipients(annotations: Readonly<Record<string, string>> | undefined): SchemeRecipients[] {
  return keyAnnotations(annotations).map(({ name, scheme, value }) => ({
    scheme: name,
    items: splitAnnotationItems(value).length,
    // An unreadable item shows up in the count without recipients.
    recipients: scheme === undefined ? [] : readItems(value, (item) => scheme.describe(item)),
  }));
}

/** `jwe (2 recipients: RSA-OAEP, ECDH-ES+A256KW P-256)` */
export function describeRecipients(annotations: Readonly<Record<string, string>> | undefined): string {
  return layerRecipients(annotations)
    .map((s) => {
      if (s.recipients.length === 0) return s.scheme;
      const list = s.recipients.map((r) => (r.detail !== undefined ? `${r.algorithm} ${r.detail}` : r.algorithm)).join(', ');
      return `${s.scheme} (${s.recipients.length} recipient${s.recipients.length === 1 ? '' : 's'}: ${list})`;
    })
    .join(', ');
}

/** The keys held by a key service that wrap a layer's key, one entry per readable wrapped item. */
export function layerKeyReferences(annotations: Readonly<Record<string, string>> | undefined): WrappedKeyReference[] {
  return keyAnnotations(annotations).flatMap(({ scheme, value }) => {
    const references = scheme?.keyReferences?.bind(scheme);
    return references === undefined ? [] : readItems(value, references);
  });
}

/** How one image's layers are encrypted, read from its manifest alone: what inspect, audit and admission report. */
export interface ManifestEncryption {
  layers: number;
  encryptedLayers: number;
  /** Schemes of the encrypted layers, e.g. `jwe`, `provider.NAME`, sorted. */
  schemes: string[];
  /**
   * Schemes of the encrypted layers whose keys unwrap without asking a key service (a private key file decrypts
   * anywhere), and schemes this build does not know; sorted. A way around the gate where policy wants a service.
   */
  offlineSchemes: string[];
  /** Keys held by a key service (Vault Transit) that wrap the encrypted layers, one entry per wrapped item. */
  serviceKeys: WrappedKeyReference[];
  /** Encrypted layers with no readable key held by a key service: nothing stands between them and a key file. */
  layersWithoutServiceKey: number;
}

export function manifestEncryption(layers: readonly Descriptor[]): ManifestEncryption {
  const encrypted = layers.filter((l) => isEncryptedMediaType(l.mediaType));
  const serviceKeysPerLayer = encrypted.map((l) => layerKeyReferences(l.annotations));
  const found = encrypted.flatMap((l) => keyAnnotations(l.annotations));
  const names = (keep: (scheme: KeyScheme | undefined) => boolean): string[] => [...new Set(found.filter((a) => keep(a.scheme)).map((a) => a.name))].sort();
  return {
    layers: layers.length,
    encryptedLayers: encrypted.length,
    schemes: names(() => true),
    offlineSchemes: names((scheme) => scheme?.keyReferences === undefined),
    serviceKeys: serviceKeysPerLayer.flat(),
    layersWithoutServiceKey: serviceKeysPerLayer.filter((keys) => keys.length === 0).length,
  };
}
