import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { isEncryptableLayerMediaType, isEncryptedMediaType, MediaType, ociLayerMediaType } from '../image/media-types.js';
import type { JsonObject } from '../image/validate.js';
import { prepareLayerEncryption } from '../crypto/layer-crypto.js';
import type { LayerKeyWrapper } from '../crypto/schemes/key-scheme.js';
import type { PodModelSettings } from '../pod-model/plain-base.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';
import { layerSelected, platformSelected, type LayerSelection } from './layer-selection.js';
import { LayerPathAudit } from '../unpack/path-audit.js';
import { POD_BASE_ANNOTATION, POD_BASE_LAYERS_ANNOTATION, POD_PATHS_ANNOTATION } from '../pod-model/annotations.js';
import type { Duplex } from 'node:stream';

export interface EncryptOptions extends LayerSelection, CopyOptions {
  /** Who can decrypt, per scheme: holders of private keys (jwe), identities Vault lets unwrap (Transit keys). */
  recipients: LayerKeyWrapper[];
  pod?: PodModelSettings;
  /** Called for layers that were selected but are left as they are, with the reason. */
  onSkip?: (label: string, reason: string) => void;
}

/**
 * Encrypts the selected layers of an image the way ocicrypt does: a fresh key and nonce per layer, the layer
 * streamed through AES-256-CTR and HMAC-SHA256, the private options wrapped once per scheme for all its
 * recipients. Manifests that change become OCI manifests, since only those carry layer annotations everywhere.
 */
export async function encryptImage(source: ImageSource, destination: ImageDestination, options: EncryptOptions): Promise<CopyResult> {
  if (options.recipients.every((w) => w.count === 0)) {
    throw new ImagegateError('USAGE', 'encrypt needs at least one recipient (--recipient jwe:PUBLIC_KEY.pem)');
  }
  return copyImage(source, destination, new EncryptRewriter(options), options);
}

class EncryptRewriter implements ImageRewriter {
  readonly encrypts = true;

  constructor(private readonly options: EncryptOptions) {}

  afterPlanning(rewrites: number): void {
    if (rewrites === 0) {
      throw new ImagegateError('USAGE', 'nothing to encrypt: every selected layer is already encrypted or not an encryptable layer');
    }
  }

  async planLayer(ctx: LayerContext): Promise<LayerRewrite | undefined> {
    const pod = this.options.pod;
    if (pod !== undefined && ctx.index < pod.baseLayers) return undefined;
    if (!platformSelected(this.options, ctx.platform)) return undefined;
    if (!layerSelected(this.options, ctx.index, ctx.count, ctx.platform)) return undefined;
    const desc = ctx.descriptor;
    if (isEncryptedMediaType(desc.mediaType)) {
      this.options.onSkip?.(ctx.label, 'already encrypted');
      return undefined;
    }
    if (!isEncryptableLayerMediaType(desc.mediaType)) {
      if (this.options.layers !== undefined) {
        throw new ImagegateError('UNSUPPORTED', `${ctx.label} has media type ${desc.mediaType}, which ocicrypt cannot encrypt; leave it out of --layer`);
      }
      this.options.onSkip?.(ctx.label, `media type ${desc.mediaType} is not an encryptable layer`);
      return undefined;
    }
    const layer = await prepareLayerEncryption(desc, this.options.recipients);
    const plan: LayerRewrite = { createTransform: () => layer.createCipher(), finish: () => layer.encryptedDescriptor() };
    if (pod === undefined) return plan;
    const gzip = desc.mediaType.endsWith('gzip');
    // The audit reads the plaintext on its way into the cipher: one pass over the layer.
    return { ...plan, createTransform: () => [new LayerPathAudit(pod.paths, ctx.label, gzip), plan.createTransform!() as Duplex] };
  }

  rewriteManifest(json: JsonObject): JsonObject {
    const out: JsonObject = { ...json, mediaType: MediaType.OciManifest };
    const pod = this.options.pod;
    if (pod !== undefined) {
      out.annotations = {
        ...(json.annotations as Record<string, string> | undefined),
        [POD_BASE_ANNOTATION]: pod.base,
        [POD_BASE_LAYERS_ANNOTATION]: String(pod.baseLayers),
        [POD_PATHS_ANNOTATION]: pod.paths.join(','),
      };
    }
    const config = json.config as Descriptor;
    if (config.mediaType === MediaType.DockerConfig) out.config = { ...config, mediaType: MediaType.OciConfig };
    out.layers = (json.layers as Descriptor[]).map((l) => ({ ...l, mediaType: ociLayerMediaType(l.mediaType) }));
    return reorder(out);
  }

  rewriteIndex(json: JsonObject): JsonObject {
    return json.mediaType === MediaType.DockerManifestList ? reorder({ ...json, mediaType: MediaType.OciIndex }) : json;
  }
}

/** Keeps `schemaVersion` and `mediaType` first, as every tool writes them; purely cosmetic for readers. */
function reorder(json: JsonObject): JsonObject {
  const { schemaVersion, mediaType, ...rest } = json;
  return { schemaVersion, mediaType, ...rest };
}
