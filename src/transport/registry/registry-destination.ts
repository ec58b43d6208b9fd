import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { ImagegateError } from '../../errors.js';
import { DigestingStream, sha256Digest } from '../../image/digest.js';
import type { Descriptor } from '../../image/descriptor.js';
import type { ImageDestination, ImageSource, StoredBlob } from '../../image/image.js';
import type { ImageReference } from '../../image/reference.js';
import { RepositoryClient, type UploadSession } from './client.js';
import type { RegistryHttp } from './http.js';
import { connectRegistry, describeRegistryReference, type RegistryOptions } from './location.js';
import { RegistrySource } from './registry-source.js';

/** An upload session and its newest Location, which changes with every chunk. */
interface OpenUpload {
  session: UploadSession;
}

/**
 * What a push stopped before its end leaves in the registry, for the message that reports the interruption. Blobs
 * are never deleted on the way out: another image may share them.
 */
export const INTERRUPTED_PUSH_LEAVES =
  'no tag or manifest was written and the upload in progress was cancelled; blobs already uploaded stay in the registry, unreferenced, until its garbage collection removes them';

/** How long an upload whose source stopped may take to close its request cleanly before it is cut off. */
const CLEAN_STOP_MS = 10_000;

/**
 * Pushes an image to a registry. Blobs go first (skipped when present, mounted from the source repository when
 * both are on this registry); manifests are kept until `commit`, which pushes them by digest, children before the
 * indexes that list them, and the root under its tag: a push that fails part-way leaves only blobs, which the
 * registry's garbage collection reclaims, and never a manifest that points at a missing blob.
 *
 * Every upload streams its bytes in PATCH requests and names the digest in a final PUT, so an upload stopped by its
 * source (Ctrl-C, a layer that failed its HMAC) can end its request cleanly and learn the session's current
 * Location: docker-registry 2.8 refuses to cancel a session through an older Location ("upload resumed at wrong
 * offset", and its cancel then fails because the session was already closed), so the partial data would stay.
 */
export class RegistryDestination implements ImageDestination {
  readonly preservesLayerAnnotations = true;
  readonly canStoreIndex = true;
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  /** Uploads in progress, cancelled on abort so the registry can drop them early. */
  private readonly uploads = new Set<OpenUpload>();
  private closed = false;

  private constructor(
    readonly description: string,
    /** Undefined: `commit` pushes manifests by digest only, and the caller moves tags itself. */
    private readonly tag: string | undefined,
    private readonly client: RepositoryClient,
    private readonly chunkSize: number | undefined,
    /** Whether closing the destination closes the connection: not when it is shared (see `over`). */
    private readonly ownsConnection = true,
  ) {}

  static async open(ref: ImageReference, options: RegistryOptions): Promise<RegistryDestination> {
    if (ref.digest !== undefined) {
      throw new ImagegateError(
        'USAGE',
        `docker://${ref.domain}/${ref.path}@${ref.digest}: a destination needs a tag, not a digest; the pushed image's digest is printed when it is done`,
      );
    }
    const http = await connectRegistry(ref, options);
    return new RegistryDestination(describeRegistryReference(ref), ref.tag ?? 'latest', new RepositoryClient(http, ref.path), options.chunkSize);
  }

  /**
   * A destination over a connection someone else keeps open (a whole repository's rewrap shares one). Without a tag
   * it pushes by digest only, so the caller can move each tag and handle a registry that refuses to (immutable tags).
   */
  static over(ref: ImageReference, http: RegistryHttp): RegistryDestination {
    return new RegistryDestination(describeRegistryReference(ref), ref.tag, new RepositoryClient(http, ref.path), undefined, false);
  }

  async reuseBlob(blob: StoredBlob, source: ImageSource): Promise<boolean> {
    if (await this.client.hasBlob(blob.digest)) return true;
    const sameRegistry = source instanceof RegistrySource && source.registryHost === this.client.http.host && source.reference.path !== this.client.repository;
    return sameRegistry && (await this.client.mountBlob(blob.digest, source.reference.path));
  }

  async putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    // Watch the source from the start: it may fail (a tampered or refused layer) while the upload is being opened.
    const source = new SourceWatch(content);
    let upload: OpenUpload;
    try {
      upload = { session: await this.client.startUpload() };
      source.throwIfFailed();
    } catch (e) {
      const cause = source.error ?? e;
      source.stop();
      content.destroy();
      throw cause;
    }
    this.uploads.add(upload);
    try {
      return await this.upload(upload, source, expected);
    } catch (e) {
      // The layer's own failure (HMAC, a refused path) explains more than the aborted request; but a request that
      // failed first (a registry gone) is the cause, and destroying the source below must not hide it.
      const cause = source.error ?? e;
      source.stop();
      content.destroy();
      await this.client.cancelUpload(upload.session);
      throw cause;
    } finally {
      source.stop();
      this.uploads.delete(upload);
    }
  }

  /**
   * The bytes stream in one PATCH, or in chunks when asked (or when the registry sets a minimum chunk size), and the
   * PUT names the digest: the one expected when it is known (the registry checks it), else the one computed on the
   * way (a layer being encrypted). A source that stops ends the request early instead of cutting it, so the
   * session's newest Location comes back and `putBlob` can cancel it.
   */
  private async upload(upload: OpenUpload, source: SourceWatch, expected: StoredBlob | undefined): Promise<StoredBlob> {
    // A blob copied as it is was already verified by its source; hashing it twice would only cost time.
    const digesting = expected === undefined ? new DigestingStream() : undefined;
    const minChunk = upload.session.minChunk;
    const chunkSize = this.chunkSize !== undefined || minChunk !== undefined ? Math.max(this.chunkSize ?? 0, minChunk ?? 0) : undefined;
    const body = source.into(digesting ?? new PassThrough());
    if (chunkSize === undefined) upload.session = await this.client.appendUpload(upload.session, body, undefined, source.signal);
    else await this.putChunks(upload, body, chunkSize);
    // The request ended because the source stopped, not because the blob was complete.
    source.throwIfFailed();
    const stored = digesting !== undefined ? { digest: digesting.digest(), size: digesting.size } : expected!;
    await this.client.finishUpload(upload.session, stored.digest);
    return stored;
  }

  /** Chunked upload: PATCHes of `chunkSize` bytes with Content-Range; memory is bounded by one chunk. */
  private async putChunks(upload: OpenUpload, content: Readable, chunkSize: number): Promise<void> {
    const client = this.client;
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingSize = 0;
    const flush = async (): Promise<void> => {
      if (pendingSize === 0) return;
      const chunk = Buffer.concat(pending, pendingSize);
      pending = [];
      pendingSize = 0;
      upload.session = await client.appendUpload(upload.session, chunk, { offset, length: chunk.length });
      offset += chunk.length;
    };
    await pipeline(
      content,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          pending.push(chunk);
          pendingSize += chunk.length;
          if (pendingSize < chunkSize) return cb();
          flush().then(() => cb(), cb);
        },
        final(cb) {
          flush().then(() => cb(), cb);
        },
      }),
    );
  }

  /** A manifest this destination wrote (bytes and media type), for moving more tags to it. */
  writtenManifest(digest: string): { bytes: Buffer; mediaType: string } | undefined {
    return this.manifests.get(digest);
  }

  /** Keeps the manifest for `commit`, so a push that stops earlier writes none. */
  async putManifest(bytes: Buffer, mediaType: string): Promise<StoredBlob> {
    const digest = sha256Digest(bytes);
    this.manifests.set(digest, { bytes, mediaType });
    return { digest, size: bytes.length };
  }

  async commit(root: Descriptor): Promise<void> {
    const doc = this.manifests.get(root.digest);
    if (doc === undefined) throw new ImagegateError('DESTINATION', `${this.description}: manifest ${root.digest} was not written before commit; the copy is incomplete`);
    // In the order they came, which is children before the indexes that list them; the tag last.
    for (const [digest, manifest] of this.manifests) await this.client.putManifest(digest, manifest.bytes, manifest.mediaType);
    if (this.tag !== undefined) await this.client.putManifest(this.tag, doc.bytes, doc.mediaType);
    await this.close();
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.uploads].map((u) => this.client.cancelUpload(u.session)));
    await this.close();
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsConnection) await this.client.http.close();
  }
}

/**
 * Follows the stream a blob is uploaded from. When it fails or is destroyed before its end, the body the HTTP client
 * reads is ended early, so the request finishes and the registry answers with the session's newest Location (which
 * cancelling needs); a request that does not finish within CLEAN_STOP_MS is aborted. A request left waiting instead
 * would wait for bytes that never come (and the registry with it) until a timeout. It starts watching at once, so a
 * failure that happens while the upload session is being opened is not missed.
 */
class SourceWatch {
  error: Error | undefined;
  private stopped = false;
  private body: Duplex | undefined;
  private cutOff: NodeJS.Timeout | undefined;
  private readonly controller = new AbortController();

  constructor(private readonly source: Readable) {
    source.on('error', (e) => this.fail(e));
    source.on('close', () => {
      if (!source.readableEnded) this.fail(new ImagegateError('IO', 'the blob being uploaded stopped before its end'));
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  throwIfFailed(): void {
    if (this.error !== undefined) throw this.error;
  }

  /** Pipes the source into `body` and returns it, ending it early when the source fails. */
  into<T extends Duplex>(body: T): T {
    this.body = body;
    this.throwIfFailed();
    this.source.pipe(body);
    return body;
  }

  /** Stops watching: the upload is over, or has already failed for its own reason. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.cutOff);
  }

  private fail(e: Error): void {
    if (this.stopped || this.error !== undefined) return;
    this.error = e;
    const body = this.body;
    if (body === undefined) {
      this.controller.abort(e);
      return;
    }
    this.source.unpipe(body);
    body.end();
    this.cutOff = setTimeout(() => this.controller.abort(e), CLEAN_STOP_MS);
    this.cutOff.unref();
  }
}
