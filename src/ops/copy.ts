import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { addAbortSignal, PassThrough } from 'node:stream';
import { ImagegateError } from '../errors.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform } from '../image/descriptor.js';
import type { ImageDestination, ImageNode, ImageSource, IndexNode, ManifestNode } from '../image/image.js';
import { serialize } from '../image/manifest.js';
import { isEncryptedMediaType, MediaType } from '../image/media-types.js';
import { loadImageTree } from '../image/tree.js';
import type { JsonObject } from '../image/validate.js';
import { limiter } from '../util/limit.js';

/** What a rewriter is told about the layer it decides on. */
export interface LayerContext {
  descriptor: Descriptor;
  /** Position in the manifest, 0 = bottom layer. */
  index: number;
  count: number;
  platform: Platform | undefined;
  /** `linux/amd64 layer 2 (sha256:...)`, for messages. */
  label: string;
}

/** How one layer is rewritten. Planned before any byte moves, so key problems fail before anything is written. */
export interface LayerRewrite {
  /** A fresh transform from the stored source bytes to the output bytes. */
  createTransform(): Transform;
  /** After the output blob was stored: the output descriptor's fields other than digest and size. */
  finish(): LayerDescription;
}

/** A layer descriptor's fields other than digest and size. */
export interface LayerDescription {
  mediaType: string;
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

/** An op, expressed as decisions on layers and adjustments to the documents that list them. */
export interface ImageRewriter {
  /** True when the output carries encrypted layers this rewriter adds. */
  readonly encrypts: boolean;
  /** Returns undefined to copy the layer as it is. */
  planLayer(ctx: LayerContext): Promise<LayerRewrite | undefined>;
  /** Sees how many layers were planned for rewriting, before anything is written; may refuse. */
  afterPlanning?(rewrites: number): void;
  /** Adjusts a manifest whose layers changed (e.g. convert Docker schema 2 to OCI). */
  rewriteManifest?(json: JsonObject): JsonObject;
  /** Adjusts an index whose children changed. */
  rewriteIndex?(json: JsonObject): JsonObject;
}

export interface CopyOptions {
  /** Layers moved at once. */
  concurrency?: number;
  /** For destinations that hold one image: which platform of an index to write. */
  platform?: Platform;
  onLayer?: (event: { label: string; action: 'rewritten' | 'copied' | 'skipped'; descriptor: Descriptor }) => void;
  /** Cancels the copy (e.g. on Ctrl-C): streams stop, and the destination is cleaned up as on any failure. */
  signal?: AbortSignal;
}

export interface CopyResult {
  root: Descriptor;
  rewrittenLayers: number;
}

const DEFAULT_CONCURRENCY = 3;

/**
 * Copies an image from a source to a destination, letting `rewriter` transform layers on the way. Bottom-up:
 * layers and configs first, then each manifest, then indexes, then the destination's commit, so nothing points at
 * content that is not there. Every layer streams source → transform → destination without being held in memory.
 * On any failure the destination is aborted and keeps nothing of this run.
 */
export async function copyImage(source: ImageSource, destination: ImageDestination, rewriter: ImageRewriter, options: CopyOptions = {}): Promise<CopyResult> {
  let run: CopyRun | undefined;
  try {
    let root = await loadImageTree(source, await source.rootDescriptor(), source.description);
    if (root.kind === 'index' && !destination.canStoreIndex) root = pickSingleImage(root, options.platform, destination.description);
    const plans = await planLayers(root, rewriter);
    rewriter.afterPlanning?.(plans.size);
    checkDestinationCanHold(root, plans, rewriter, destination);
    run = new CopyRun(source, destination, rewriter, plans, options);
    const out = await run.node(root);
    await destination.commit(out);
    return { root: out, rewrittenLayers: run.rewritten };
  } catch (e) {
    // Let layers still in flight finish or fail first, so none writes into the destination after it was cleaned.
    await run?.settled();
    await destination.abort();
    // A cancelled stream fails with a generic AbortError; report why it was cancelled instead.
    if (options.signal?.aborted === true && options.signal.reason instanceof Error) throw options.signal.reason;
    throw e;
  }
}

type Plans = Map<Descriptor, LayerRewrite>;

function pickSingleImage(root: IndexNode, platform: Platform | undefined, where: string): ImageNode {
  const images = root.children.filter((c): c is ManifestNode => c.kind === 'manifest');
  const chosen = platform === undefined ? images : images.filter((c) => platformMatches(platform, c.descriptor.platform));
  if (chosen.length === 1) return chosen[0]!;
  const available = images.map((c) => formatPlatform(c.descriptor.platform)).join(', ');
  throw new ImagegateError(
    'USAGE',
    `${where} holds a single image, but the source is a multi-platform index (${available}); choose one with --platform`,
  );
}

async function planLayers(root: ImageNode, rewriter: ImageRewriter): Promise<Plans> {
  const plans: Plans = new Map();
  const visit = async (node: ImageNode, platform: Platform | undefined): Promise<void> => {
    if (node.kind === 'index') {
      for (const child of node.children) await visit(child, child.descriptor.platform);
      return;
    }
    if (node.kind !== 'manifest') return;
    const layers = node.manifest.layers;
    for (const [index, descriptor] of layers.entries()) {
      const label = `${platform !== undefined ? `${formatPlatform(platform)} ` : ''}layer ${index} (${descriptor.digest})`;
      const plan = await rewriter.planLayer({ descriptor, index, count: layers.length, platform, label });
      if (plan !== undefined) plans.set(descriptor, plan);
    }
  };
  await visit(root, root.descriptor.platform);
  return plans;
}

function checkDestinationCanHold(root: ImageNode, plans: Plans, rewriter: ImageRewriter, destination: ImageDestination): void {
  if (destination.canStoreEncryptedLayers) return;
  const keepsEncrypted = (node: ImageNode): boolean =>
    node.kind === 'manifest'
      ? node.manifest.layers.some((l) => isEncryptedMediaType(l.mediaType) && !plans.has(l))
      : node.kind === 'index' && node.children.some(keepsEncrypted);
  if ((rewriter.encrypts && plans.size > 0) || keepsEncrypted(root)) {
    throw new ImagegateError(
      'DESTINATION',
      `${destination.description} cannot carry the key annotations of encrypted layers, so the image could never be decrypted (containers/skopeo#982); write to oci: or oci-archive: instead`,
    );
  }
}

class CopyRun {
  rewritten = 0;
  private readonly limit;
  /** Each distinct blob is moved once, however many manifests list it; also what `settled()` waits for. */
  private readonly layerOutputs = new Map<string, Promise<Descriptor>>();

  constructor(
    private readonly source: ImageSource,
    private readonly destination: ImageDestination,
    private readonly rewriter: ImageRewriter,
    private readonly plans: Plans,
    private readonly options: CopyOptions,
  ) {
    this.limit = limiter(options.concurrency ?? DEFAULT_CONCURRENCY);
  }

  async node(node: ImageNode): Promise<Descriptor> {
    switch (node.kind) {
      case 'manifest':
        return this.manifest(node);
      case 'index':
        return this.index(node);
      case 'opaque':
        return this.layer(node.descriptor);
    }
  }

  private async index(node: IndexNode): Promise<Descriptor> {
    const children: Descriptor[] = [];
    for (const child of node.children) children.push(await this.node(child));
    const changed = children.some((d, i) => d.digest !== node.index.manifests[i]!.digest);
    if (!changed) return this.putDocument(node.bytes, node.descriptor);
    let json: JsonObject = { ...node.index.json, manifests: children };
    if (this.rewriter.rewriteIndex !== undefined) json = this.rewriter.rewriteIndex(json);
    return this.putDocument(serialize(json), { ...node.descriptor, mediaType: mediaTypeOf(json, MediaType.OciIndex) });
  }

  private async manifest(node: ManifestNode): Promise<Descriptor> {
    const { config, layers } = node.manifest;
    const [, ...outLayers] = await Promise.all([this.layer(config), ...layers.map((l) => this.layer(l))]);
    const changed = outLayers.some((d, i) => d.digest !== layers[i]!.digest || d.mediaType !== layers[i]!.mediaType);
    if (!changed) return this.putDocument(node.bytes, node.descriptor);
    let json: JsonObject = { ...node.manifest.json, layers: outLayers };
    if (this.rewriter.rewriteManifest !== undefined) json = this.rewriter.rewriteManifest(json);
    return this.putDocument(serialize(json), { ...node.descriptor, mediaType: mediaTypeOf(json, MediaType.OciManifest) });
  }

  /** Moves a blob (layer, config, opaque document) once per run, rewriting it when a plan says so. */
  private layer(desc: Descriptor): Promise<Descriptor> {
    const plan = this.plans.get(desc);
    const key = `${desc.digest}${plan !== undefined ? '+rewrite' : ''}`;
    let out = this.layerOutputs.get(key);
    if (out === undefined) {
      out = this.limit(() => (plan !== undefined ? this.rewriteLayer(desc, plan) : this.copyBlob(desc).then(() => desc)));
      this.layerOutputs.set(key, out);
    }
    return out;
  }

  /** Resolves once every layer started by this run has finished, successfully or not. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.layerOutputs.values());
  }

  private async rewriteLayer(desc: Descriptor, plan: LayerRewrite): Promise<Descriptor> {
    const input = await this.open(desc);
    const transform = plan.createTransform();
    const output = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Wait for both sides to settle before failing, so the destination has removed its partial blob by the time
    // the run aborts.
    const [put, piped] = await Promise.allSettled([this.destination.putBlob(output), pipeline(input, transform, output)]);
    if (piped.status === 'rejected') throw piped.reason;
    if (put.status === 'rejected') throw put.reason;
    const stored = put.value;
    const { mediaType, ...rest } = plan.finish();
    const result: Descriptor = { mediaType, digest: stored.digest, size: stored.size, ...rest };
    this.rewritten++;
    this.options.onLayer?.({ label: desc.digest, action: 'rewritten', descriptor: result });
    return result;
  }

  private async copyBlob(desc: Descriptor): Promise<void> {
    if (await this.destination.hasBlob(desc)) return;
    const input = await this.open(desc);
    await this.destination.putBlob(input, desc);
  }

  private async open(desc: Descriptor): Promise<Readable> {
    const signal = this.options.signal;
    signal?.throwIfAborted();
    const input = await this.source.openBlob(desc);
    return signal !== undefined ? addAbortSignal(signal, input) : input;
  }

  private async putDocument(bytes: Buffer, template: Descriptor): Promise<Descriptor> {
    const stored = await this.destination.putBlob(PassThrough.from([bytes]) as Readable);
    return { ...template, digest: stored.digest, size: stored.size };
  }
}

function mediaTypeOf(json: JsonObject, fallback: string): string {
  return typeof json.mediaType === 'string' ? json.mediaType : fallback;
}
