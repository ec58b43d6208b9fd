import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { addAbortSignal, PassThrough, Transform as TransformStream } from 'node:stream';
import { ImagegateError, isImagegateError } from '../errors.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform, type LayerDescription } from '../image/descriptor.js';
import type { ImageDestination, ImageNode, ImageSource, IndexNode, ManifestNode } from '../image/image.js';
import { serialize } from '../image/manifest.js';
import { isEncryptedMediaType, MediaType } from '../image/media-types.js';
import { loadImageTree } from '../image/tree.js';
import type { JsonObject } from '../image/validate.js';
import { limiter } from '../util/limit.js';
import { DEFAULT_RETRY, retrying, type RetryPolicy } from '../util/retry.js';

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
  /**
   * A fresh transform from the stored source bytes to the output bytes; absent when only the descriptor changes
   * (rewrapping a layer key), in which case the blob is copied as it is, or reused where the destination has it.
   */
  createTransform?(): Duplex | Duplex[];
  /** After the output blob was stored: the output descriptor's fields other than digest and size. */
  finish(): LayerDescription;
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

/** What the driver reports as blobs move, for a progress display. */
export interface BlobProgress {
  /** Stable id of the blob being moved: its source digest (plus a suffix when the same digest is moved twice). */
  id: string;
  /** Human label, e.g. `linux/amd64 layer 2 (sha256:abcd…)` or `config (sha256:…)`. */
  label: string;
  /**
   * start: work began; bytes: more source bytes were read; done: stored; skipped: the destination already had it
   * (or mounted it); retry: a temporary failure, trying again; failed: gave up.
   */
  phase: 'start' | 'bytes' | 'done' | 'skipped' | 'retry' | 'failed';
  /** rewrite = encrypted/decrypted on the way; copy = moved as it is. */
  action: 'rewrite' | 'copy';
  /** Source bytes read so far. */
  bytes: number;
  /** Source size in bytes. */
  total: number;
  /** Why, for retry and failed. */
  message?: string;
}

export interface CopyOptions {
  /** Blobs moved at once. */
  concurrency?: number;
  /** For destinations that hold one image: which platform of an index to write. */
  platform?: Platform;
  onProgress?: (event: BlobProgress) => void;
  /**
   * How often a blob is tried again after a temporary failure (a registry's 503, a reset connection). The blob is
   * read from the source again and rewritten the same way; a layer's key is fixed at planning, so the bytes match.
   */
  retry?: RetryPolicy;
  /** Cancels the copy (e.g. on Ctrl-C): streams stop, and the destination is cleaned up as on any failure. */
  signal?: AbortSignal;
  /**
   * The destination is where the source already is (an in-place rewrite such as rewrap): blobs copied as they are
   * are not checked or moved, and when the rewriter plans no layer, nothing is written at all, so an image that needs
   * nothing costs no push (and no push rights).
   */
  inPlace?: boolean;
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
    const { plans, labels } = await planLayers(root, rewriter);
    rewriter.afterPlanning?.(plans.size);
    if (plans.size === 0 && options.inPlace === true) {
      await destination.abort();
      return { root: root.descriptor, rewrittenLayers: 0 };
    }
    checkDestinationCanHold(root, plans, rewriter, destination);
    run = new CopyRun(source, destination, rewriter, plans, labels, options);
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
/** Layer labels for progress, from planning (which knows platforms and positions). */
type Labels = Map<Descriptor, string>;

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

async function planLayers(root: ImageNode, rewriter: ImageRewriter): Promise<{ plans: Plans; labels: Labels }> {
  const plans: Plans = new Map();
  const labels: Labels = new Map();
  const visit = async (node: ImageNode, platform: Platform | undefined): Promise<void> => {
    if (node.kind === 'index') {
      for (const child of node.children) await visit(child, child.descriptor.platform);
      return;
    }
    if (node.kind !== 'manifest') return;
    const layers = node.manifest.layers;
    for (const [index, descriptor] of layers.entries()) {
      const label = `${platform !== undefined ? `${formatPlatform(platform)} ` : ''}layer ${index} (${descriptor.digest})`;
      labels.set(descriptor, label);
      contexts.push({ descriptor, index, count: layers.length, platform, label });
    }
  };
  const contexts: LayerContext[] = [];
  await visit(root, root.descriptor.platform);
  // All layers are planned at once, so key services that batch (Vault Transit) see the whole image in one request.
  const planned = await Promise.all(contexts.map((ctx) => rewriter.planLayer(ctx)));
  planned.forEach((plan, i) => {
    if (plan !== undefined) plans.set(contexts[i]!.descriptor, plan);
  });
  return { plans, labels };
}

function checkDestinationCanHold(root: ImageNode, plans: Plans, rewriter: ImageRewriter, destination: ImageDestination): void {
  if (destination.preservesLayerAnnotations) return;
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
  private readonly blobOutputs = new Map<string, Promise<Descriptor>>();

  constructor(
    private readonly source: ImageSource,
    private readonly destination: ImageDestination,
    private readonly rewriter: ImageRewriter,
    private readonly plans: Plans,
    private readonly labels: Labels,
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
        return this.opaque(node.descriptor);
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
    const [, ...outLayers] = await Promise.all([this.blob(config, `config (${config.digest})`), ...layers.map((l) => this.blob(l))]);
    // A layer left alone comes back as the very same descriptor; anything else (new digest, new annotations) changed.
    const changed = outLayers.some((d, i) => d !== layers[i]);
    if (!changed) return this.putDocument(node.bytes, node.descriptor);
    let json: JsonObject = { ...node.manifest.json, layers: outLayers };
    if (this.rewriter.rewriteManifest !== undefined) json = this.rewriter.rewriteManifest(json);
    return this.putDocument(serialize(json), { ...node.descriptor, mediaType: mediaTypeOf(json, MediaType.OciManifest) });
  }

  /** An artifact an index lists (a signature, an attestation): a document copied byte for byte. */
  private async opaque(desc: Descriptor): Promise<Descriptor> {
    return this.putDocument(await this.source.readManifest(desc), desc);
  }

  /** Moves a blob (layer or config) once per run, rewriting it when a plan says so, trying again on temporary failures. */
  private blob(desc: Descriptor, label = this.labels.get(desc) ?? `blob (${desc.digest})`): Promise<Descriptor> {
    const plan = this.plans.get(desc);
    const id = `${desc.digest}${plan !== undefined ? '+rewrite' : ''}`;
    let out = this.blobOutputs.get(id);
    if (out === undefined) {
      const report = this.reporter(id, label, plan !== undefined ? 'rewrite' : 'copy', desc.size);
      out = this.limit(() =>
        retrying((attempt) => (plan !== undefined ? this.rewriteLayer(desc, plan, report, attempt) : this.copyBlob(desc, report)), this.options.retry ?? DEFAULT_RETRY, {
          signal: this.options.signal,
          onRetry: (e) => report('retry', 0, e instanceof Error ? e.message : String(e)),
        }),
      ).catch((e: unknown) => {
        report('failed', 0, e instanceof Error ? e.message : String(e));
        throw e;
      });
      this.blobOutputs.set(id, out);
    }
    return out;
  }

  /** Resolves once every blob started by this run has finished, successfully or not. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.blobOutputs.values());
  }

  private async rewriteLayer(desc: Descriptor, plan: LayerRewrite, report: Reporter, attempt: number): Promise<Descriptor> {
    if (plan.createTransform === undefined) {
      await this.copyBlob(desc, report);
      if (attempt === 1) this.rewritten++;
      const { mediaType, ...rest } = plan.finish();
      return { mediaType, digest: desc.digest, size: desc.size, ...rest };
    }
    const input = await this.open(desc, report);
    const created = plan.createTransform();
    const transforms = Array.isArray(created) ? created : [created];
    const output = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Wait for both sides to settle before failing, so the destination has removed its partial blob by the time
    // the run aborts.
    const storing = this.destination.putBlob(output).catch((e: unknown) => {
      // A destination that gave up stops reading; unblock the pipeline feeding it.
      output.destroy(e instanceof Error ? e : new Error(String(e)));
      throw e;
    });
    const [put, piped] = await Promise.allSettled([storing, pipeline([input, ...transforms, output])]);
    if (piped.status === 'rejected' && (isImagegateError(piped.reason) || put.status === 'fulfilled')) throw piped.reason;
    // The pipeline's own error is then only the echo of the destination's failure (a premature close).
    if (put.status === 'rejected') throw put.reason;
    const stored = put.value;
    const { mediaType, ...rest } = plan.finish();
    const result: Descriptor = { mediaType, digest: stored.digest, size: stored.size, ...rest };
    if (attempt === 1) this.rewritten++;
    report('done', desc.size);
    return result;
  }

  private async copyBlob(desc: Descriptor, report: Reporter): Promise<Descriptor> {
    // In place, every blob the image lists is already where it goes: asking would cost a request per blob (and undici
    // opens a new connection after each HEAD).
    if (this.options.inPlace === true || (await this.destination.reuseBlob(desc, this.source))) {
      report('skipped', desc.size);
      return desc;
    }
    const input = await this.open(desc, report);
    await this.destination.putBlob(input, desc);
    report('done', desc.size);
    return desc;
  }

  /** Opens a blob of the source, counting what is read for progress and stopping when the run is cancelled. */
  private async open(desc: Descriptor, report: Reporter): Promise<Readable> {
    const signal = this.options.signal;
    signal?.throwIfAborted();
    const input = await this.source.openBlob(desc);
    report('start', 0);
    let counted: Readable = input;
    if (this.options.onProgress !== undefined) {
      let read = 0;
      const counter = new TransformStream({
        transform(chunk: Buffer, _enc, cb) {
          read += chunk.length;
          report('bytes', read);
          cb(null, chunk);
        },
      });
      // pipeline, not pipe: whichever side fails or is destroyed takes the other down, so no file stays open.
      pipeline(input, counter).catch(() => {});
      counted = counter;
    }
    return signal !== undefined ? addAbortSignal(signal, counted) : counted;
  }

  private reporter(id: string, label: string, action: BlobProgress['action'], total: number): Reporter {
    const onProgress = this.options.onProgress;
    if (onProgress === undefined) return () => {};
    return (phase, bytes, message) => onProgress({ id, label, phase, action, bytes, total, ...(message !== undefined ? { message } : {}) });
  }

  private async putDocument(bytes: Buffer, template: Descriptor): Promise<Descriptor> {
    const stored = await this.destination.putManifest(bytes, template.mediaType);
    return { ...template, digest: stored.digest, size: stored.size };
  }
}

type Reporter = (phase: BlobProgress['phase'], bytes: number, message?: string) => void;

function mediaTypeOf(json: JsonObject, fallback: string): string {
  return typeof json.mediaType === 'string' ? json.mediaType : fallback;
}
