import { canonicalBindingName } from '../image/reference.js';
import { ImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { splitAnnotationItems } from '../crypto/key-wrapper.js';
import { decodeVaultItem, encodeVaultItem, VAULT_ANNOTATION, type VaultLayerKeys } from '../crypto/wrappers/vault.js';
import type { ImageReference } from '../image/reference.js';
import { RepositoryClient } from '../transport/registry/client.js';
import { connectRegistry, type RegistryOptions } from '../transport/registry/location.js';
import { openDestination, withSource } from '../transport/transports.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';

export interface RewrapOptions extends CopyOptions {
  vault: VaultLayerKeys;
  /** Re-bind every wrapped key to this repository (promotion); needs decrypt rights, unlike a plain rewrap. */
  bindTo?: string;
  /** Told about each wrapped key moved: from and to key version. */
  onRewrap?: (label: string, from: number, to: number) => void;
  /** Accept images without Vault-wrapped keys (rewrapping a whole repository), instead of failing. */
  allowNothing?: boolean;
}

/**
 * Moves every Vault-wrapped layer key of an image to its Transit key's latest version (after a rotation), in one
 * batch per image; the plaintext keys never leave Vault. Only annotations change: every blob is reused as it is,
 * so pushing the result uploads nothing but manifests.
 */
export async function rewrapImage(source: ImageSource, destination: ImageDestination, options: RewrapOptions): Promise<CopyResult> {
  return copyImage(source, destination, new RewrapRewriter(options), options);
}

class RewrapRewriter implements ImageRewriter {
  readonly encrypts = false;

  constructor(private readonly options: RewrapOptions) {}

  afterPlanning(rewrites: number): void {
    if (rewrites === 0 && this.options.allowNothing !== true) throw new ImagegateError('USAGE', 'nothing to rewrap: no layer of this image has a Vault-wrapped key');
  }

  async planLayer(ctx: LayerContext): Promise<LayerRewrite | undefined> {
    const desc = ctx.descriptor;
    const value = desc.annotations?.[VAULT_ANNOTATION];
    if (!isEncryptedMediaType(desc.mediaType) || value === undefined) return undefined;
    const items = await Promise.all(
      splitAnnotationItems(value).map(async (item) => {
        if (item instanceof Error) throw new ImagegateError('BAD_FORMAT', `${ctx.label}: ${item.message}`);
        const before = decodeVaultItem(item, ctx.label);
        const bindTo = this.options.bindTo;
        const after = bindTo !== undefined && bindTo !== canonicalBindingName(before.binding)
          ? await this.options.vault.rebind(before, bindTo, ctx.label)
          : await this.options.vault.rewrap(before, ctx.label);
        this.options.onRewrap?.(ctx.label, before.version, after.version);
        return encodeVaultItem(after).toString('base64');
      }),
    );
    return {
      finish: () => {
        const { digest: _d, size: _s, mediaType, annotations, ...rest } = desc;
        return { ...rest, mediaType, annotations: { ...annotations, [VAULT_ANNOTATION]: items.join(',') } };
      },
    };
  }
}

export interface RepositoryRewrap {
  /** The tags that pointed at one image, rewrapped together. */
  tags: string[];
  before: string;
  after: string;
  rewrapped: number;
}

/**
 * Rewraps images of a registry repository in place: the tag `ref` names, or every tag when it names none. Tags
 * that share an image are rewrapped once and all moved to the result, so they keep sharing it.
 */
export async function rewrapRepository(
  ref: ImageReference,
  registry: RegistryOptions,
  options: RewrapOptions,
  onImage: (r: RepositoryRewrap) => void = () => {},
): Promise<RepositoryRewrap[]> {
  const http = await connectRegistry(ref, registry);
  const client = new RepositoryClient(http, ref.path);
  try {
    const tags = ref.tag !== undefined ? [ref.tag] : (await client.listTags()).sort();
    const byDigest = new Map<string, string[]>();
    for (const tag of tags) {
      const { descriptor } = await client.getManifest(tag);
      byDigest.set(descriptor.digest, [...(byDigest.get(descriptor.digest) ?? []), tag]);
    }
    const out: RepositoryRewrap[] = [];
    for (const [before, group] of byDigest) {
      const text = `docker://${ref.domain}/${ref.path}:${group[0]!}`;
      const result = await withSource(text, async (source) => rewrapImage(source, await openDestination(text, { registry }), { ...options, allowNothing: ref.tag === undefined }), { registry });
      if (result.rewrittenLayers > 0) {
        const moved = await client.getManifest(result.root.digest);
        for (const tag of group.slice(1)) await client.putManifest(tag, moved.bytes, moved.descriptor.mediaType);
      }
      const r = { tags: group, before, after: result.root.digest, rewrapped: result.rewrittenLayers };
      onImage(r);
      out.push(r);
    }
    return out;
  } finally {
    await http.close();
  }
}
