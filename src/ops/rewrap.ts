import { ImagegateError, isImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { splitAnnotationItems } from '../crypto/schemes/annotation-items.js';
import type { KeyScheme } from '../crypto/schemes/key-scheme.js';
import type { Keyring } from '../crypto/schemes/keyring.js';
import { keyAnnotations } from '../crypto/schemes/registry.js';
import type { ImageReference } from '../image/reference.js';
import type { RegistryOptions } from '../transport/registry/location.js';
import { RegistryCatalog, type TaggedRoot } from '../transport/registry/registry-catalog.js';
import { limiter } from '../util/limit.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';

export interface RewrapOptions extends CopyOptions {
  /** The key-service sessions that rewrap (a Transit session). */
  keyring: Keyring;
  /** Re-bind every wrapped key to this repository (promotion); needs decrypt rights, unlike a plain rewrap. */
  bindTo?: string;
  /** Told about each wrapped key moved: from and to key version. */
  onRewrap?: (label: string, from: number, to: number) => void;
  /** Accept images without Vault-wrapped keys (rewrapping a whole repository), instead of failing. */
  allowNothing?: boolean;
  /**
   * Where a registry refuses to move a tag to the rewrapped image (immutable tags), also push it under the tag plus
   * this suffix; without it the rewrapped image is only pushed by digest.
   */
  newTagSuffix?: string;
}

/**
 * Moves every Vault-wrapped layer key of an image to its Transit key's latest version (after a rotation), in one
 * batch per image; the plaintext keys never leave Vault. Only annotations change: every blob is reused as it is,
 * so pushing the result uploads nothing but manifests.
 */
async function rewrapImage(source: ImageSource, destination: ImageDestination, options: RewrapOptions): Promise<CopyResult> {
  return copyImage(source, destination, new RewrapRewriter(options), options);
}

class RewrapRewriter implements ImageRewriter {
  readonly encrypts = false;
  /** Whether any layer had keys a key service holds (all of them may already be at the latest version). */
  private sawServiceKeys = false;

  constructor(private readonly options: RewrapOptions) {}

  afterPlanning(rewrites: number): void {
    if (rewrites === 0 && this.options.allowNothing !== true && !this.sawServiceKeys) {
      throw new ImagegateError('USAGE', 'nothing to rewrap: no layer of this image has a Vault-wrapped key');
    }
  }

  async planLayer(ctx: LayerContext): Promise<LayerRewrite | undefined> {
    const desc = ctx.descriptor;
    if (!isEncryptedMediaType(desc.mediaType)) return undefined;
    const rewrapped: Record<string, string> = {};
    for (const { scheme, value } of keyAnnotations(desc.annotations)) {
      if (scheme?.rewrap === undefined) continue;
      this.sawServiceKeys = true;
      const items = await this.rewrapItems(scheme, value, ctx.label);
      if (items.some((i) => i.moved)) rewrapped[scheme.annotation] = items.map((i) => i.value).join(',');
    }
    if (Object.keys(rewrapped).length === 0) return undefined;
    return {
      finish: () => {
        const { digest: _d, size: _s, mediaType, annotations, ...rest } = desc;
        return { ...rest, mediaType, annotations: { ...annotations, ...rewrapped } };
      },
    };
  }

  /** Every item of one annotation at once (so the key service gets one batch), each moved or kept as it was. */
  private rewrapItems(scheme: KeyScheme, value: string, where: string): Promise<Array<{ moved: boolean; value: string }>> {
    return Promise.all(
      splitAnnotationItems(value).map(async (item) => {
        if (item instanceof Error) throw new ImagegateError('BAD_FORMAT', `${where}: ${item.message}`);
        const { item: after, from, to } = await scheme.rewrap!(item, { where, ...(this.options.bindTo !== undefined ? { bindTo: this.options.bindTo } : {}) }, this.options.keyring);
        // Already at the latest version and binding: keep the item as it was (a new ciphertext would change nothing).
        if (to.version === from.version && to.binding === from.binding) return { moved: false, value: item.toString('base64') };
        this.options.onRewrap?.(where, from.version, to.version);
        return { moved: true, value: after.toString('base64') };
      }),
    );
  }
}

export interface RepositoryRewrap {
  /** The tags that pointed at one image, rewrapped together. */
  tags: string[];
  before: string;
  after: string;
  /** Layers whose keys moved; 0 when nothing changed, and then nothing was written. */
  rewrapped: number;
  /** Tags the registry refused to move (immutable tags), with its answer: they still name `before`. */
  kept: Array<{ tag: string; reason: string }>;
  /** Tags pushed for the rewrapped image instead of the kept ones (`RewrapOptions.newTagSuffix`). */
  added: string[];
}

/** Images (and tag look-ups) of one repository handled at once, over its one connection pool. */
const IMAGES_AT_ONCE = 8;

/**
 * Rewraps images of a registry repository in place: the tag `ref` names, or every tag when it names none. Tags
 * that share an image are rewrapped once and all moved to the result, so they keep sharing it. One connection serves
 * the whole repository; each tag's manifest is fetched once; an image whose keys need nothing (plaintext, jwe only, or
 * already at the latest version) is left alone and nothing is written for it.
 */
export async function rewrapRepository(
  ref: ImageReference,
  registry: RegistryOptions,
  options: RewrapOptions,
  onImage: (r: RepositoryRewrap) => void = () => {},
): Promise<RepositoryRewrap[]> {
  const catalog = await RegistryCatalog.open(ref, registry);
  try {
    const tags = ref.tag !== undefined ? [ref.tag] : (await catalog.tags(ref.path)).sort();
    const limit = limiter(IMAGES_AT_ONCE);
    const roots = await Promise.all(tags.map((tag) => limit(() => catalog.root(ref.path, tag))));
    const byDigest = new Map<string, { tags: string[]; root: TaggedRoot }>();
    roots.forEach((root, i) => {
      const group = byDigest.get(root.descriptor.digest);
      if (group === undefined) byDigest.set(root.descriptor.digest, { tags: [tags[i]!], root });
      else group.tags.push(tags[i]!);
    });
    const rewrapOne = async (before: string, group: { tags: string[]; root: TaggedRoot }): Promise<RepositoryRewrap> => {
      const tagged = { domain: ref.domain, path: ref.path, tag: group.tags[0]! };
      const source = catalog.source(tagged, group.root);
      // Pushed by digest; each tag is moved below, where a registry that refuses to move one can be answered.
      const destination = catalog.destination(ref.path);
      const result = await rewrapImage(source, destination, { ...options, allowNothing: ref.tag === undefined, inPlace: true });
      const r: RepositoryRewrap = { tags: group.tags, before, after: result.root.digest, rewrapped: result.rewrittenLayers, kept: [], added: [] };
      if (result.rewrittenLayers > 0) await moveTags(catalog, ref.path, destination.writtenManifest(r.after)!, r, options.newTagSuffix);
      onImage(r);
      return r;
    };
    return await Promise.all([...byDigest].map(([before, group]) => limit(() => rewrapOne(before, group))));
  } finally {
    await catalog.close();
  }
}

/**
 * Points each tag of a rewrapped image at its new manifest, which is already pushed by digest. A registry with
 * immutable tags refuses (Harbor answers 412, ECR 400 TAG_INVALID, others 409): such a tag keeps the old image, which
 * still decrypts until the old key version is retired, and the rewrapped one gets the tag plus `suffix` if given.
 * Only a refusal that is not temporary counts: the digest push just succeeded, so it is about the tag.
 */
async function moveTags(catalog: RegistryCatalog, repository: string, moved: { bytes: Buffer; mediaType: string }, r: RepositoryRewrap, suffix: string | undefined): Promise<void> {
  for (const tag of r.tags) {
    try {
      await catalog.putTag(repository, tag, moved);
    } catch (e) {
      if (!isImagegateError(e) || e.temporary) throw e;
      r.kept.push({ tag, reason: e.message });
      if (suffix === undefined) continue;
      await catalog.putTag(repository, `${tag}${suffix}`, moved);
      r.added.push(`${tag}${suffix}`);
    }
  }
}

/**
 * `HOST[:PORT]` registries (or `docker://HOST`), each expanded to its catalog's repositories whose path matches one
 * of `globs`: the repositories of one shard, for `rewrap --repositories`.
 */
export async function catalogTargets(hosts: string[], registry: RegistryOptions, globs: string[]): Promise<ImageReference[]> {
  const out: ImageReference[] = [];
  for (const text of hosts) {
    const domain = text.replace(/^docker:\/\//, '');
    if (domain.includes('/')) throw new ImagegateError('USAGE', `with --repositories, name registries (HOST[:PORT]), not ${text}`);
    const catalog = await RegistryCatalog.open({ domain, path: '' }, registry);
    try {
      out.push(...(await catalog.repositories(globs)).map((path) => ({ domain, path })));
    } finally {
      await catalog.close();
    }
  }
  return out;
}
