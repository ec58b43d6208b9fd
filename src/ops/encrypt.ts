import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { encryptedMediaType, isEncryptableLayerMediaType, isEncryptedMediaType, MediaType, ociLayerMediaType } from '../image/media-types.js';
import type { JsonObject } from '../image/validate.js';
import type { LoadedKey } from '../crypto/key-files.js';
import type { KeyWrapper } from '../crypto/key-wrapper.js';
import { joinAnnotationItems } from '../crypto/key-wrapper.js';
import { LayerEncryptStream, newLayerSecret } from '../crypto/layer-cipher.js';
import { encodePrivateOptions, encodePublicOptions, PUBOPTS_ANNOTATION } from '../crypto/layer-options.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';
import { layerSelected, platformSelected, type LayerSelection } from './layer-selection.js';
import { LayerPathAudit } from '../unpack/path-audit.js';
import { POD_BASE_ANNOTATION, POD_BASE_LAYERS_ANNOTATION, POD_PATHS_ANNOTATION } from '../pod-model/annotations.js';
import type { Duplex } from 'node:stream';
import { VAULT_ANNOTATION, type VaultLayerKeys } from '../crypto/wrappers/vault.js';
import type { TransitKeyRef } from '../vault/transit.js';

/** Who can decrypt: holders of private keys (jwe), or identities Vault lets unwrap with Transit keys. */
export type RecipientGroup = KeyFileRecipients | VaultRecipients;

export interface KeyFileRecipients {
  wrapper: KeyWrapper;
  recipients: LoadedKey[];
}

export interface VaultRecipients {
  vault: VaultLayerKeys;
  keys: TransitKeyRef[];
  /** The repository the wrapped keys are bound to (Transit context), e.g. `registry.example/team/app`. */
  binding: string;
}

function recipientCount(g: RecipientGroup): number {
  return 'vault' in g ? g.keys.length : g.recipients.length;
}

/**
 * The pod model: the image's first `baseLayers` layers are a plaintext base image (`base`, pinned) that runs as the
 * container; the rest are encrypted and may only write under `paths`, where `imagegate init --unpack` puts them.
 */
export interface PodModelSettings {
  base: string;
  baseLayers: number;
  paths: string[];
}

export interface EncryptOptions extends LayerSelection, CopyOptions {
  recipients: RecipientGroup[];
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
  if (options.recipients.every((g) => recipientCount(g) === 0)) {
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
    const plan = await planLayerEncryption(desc, this.options.recipients);
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

async function wrapForGroup(g: RecipientGroup, privateOptions: Buffer): Promise<Array<{ annotation: string; item: Buffer }>> {
  if ('vault' in g) {
    return Promise.all(g.keys.map(async (key) => ({ annotation: VAULT_ANNOTATION, item: await g.vault.wrap(privateOptions, key, g.binding) })));
  }
  return [{ annotation: g.wrapper.annotation, item: await g.wrapper.wrap(privateOptions, g.recipients) }];
}

async function planLayerEncryption(desc: Descriptor, groups: RecipientGroup[]): Promise<LayerRewrite> {
  const secret = newLayerSecret();
  const privateOptions = encodePrivateOptions(secret, desc.digest);
  const wrapped: Record<string, string> = {};
  try {
    // Every scheme wraps at once: a Vault batch gathers the calls of all layers, which are planned together.
    const items = await Promise.all(groups.filter((g) => recipientCount(g) > 0).map((g) => wrapForGroup(g, privateOptions)));
    for (const { annotation, item } of items.flat()) wrapped[annotation] = joinAnnotationItems(wrapped[annotation], item);
  } finally {
    privateOptions.fill(0);
  }
  let cipher: LayerEncryptStream | undefined;
  return {
    createTransform() {
      cipher = new LayerEncryptStream(secret);
      return cipher;
    },
    finish() {
      if (cipher === undefined) throw new Error('finish() before createTransform()');
      const { digest: _d, size: _s, mediaType, annotations, ...rest } = desc;
      secret.key.fill(0);
      return {
        ...rest,
        mediaType: encryptedMediaType(mediaType),
        annotations: { ...annotations, ...wrapped, [PUBOPTS_ANNOTATION]: encodePublicOptions(cipher.hmac()) },
      };
    },
  };
}
