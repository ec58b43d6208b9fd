import type { Digest } from '../image/digest.js';
import { formatPlatform } from '../image/descriptor.js';
import type { ImageSource } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { layerRecipients, type SchemeRecipients } from '../crypto/layer-recipients.js';

export interface LayerReport {
  index: number;
  digest: Digest;
  size: number;
  mediaType: string;
  encrypted: boolean;
  /** Key-wrapping schemes and what they tell about recipients; empty for plain layers. */
  schemes: SchemeRecipients[];
}

export interface ImageReport {
  platform?: string;
  digest: Digest;
  mediaType: string;
  config: Digest;
  layers: LayerReport[];
}

export interface InspectReport {
  image: string;
  digest: Digest;
  mediaType: string;
  images: ImageReport[];
}

/** Describes an image's encryption without any key: which layers are encrypted, for which schemes and recipients. */
export async function inspectImage(source: ImageSource): Promise<InspectReport> {
  const rootDesc = await source.rootDescriptor();
  const root = await loadImageTree(source, rootDesc, source.description);
  const images = manifestsOf(root).map(({ node, platform }): ImageReport => {
    const report: ImageReport = {
      digest: node.descriptor.digest,
      mediaType: node.manifest.mediaType,
      config: node.manifest.config.digest,
      layers: node.manifest.layers.map((l, index) => ({
        index,
        digest: l.digest,
        size: l.size,
        mediaType: l.mediaType,
        encrypted: isEncryptedMediaType(l.mediaType),
        schemes: layerRecipients(l.annotations),
      })),
    };
    if (platform !== undefined) report.platform = formatPlatform(platform);
    return report;
  });
  return { image: source.description, digest: rootDesc.digest, mediaType: rootDesc.mediaType, images };
}
