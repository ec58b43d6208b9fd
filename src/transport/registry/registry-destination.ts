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
 * Pushes an image to a registry. Blobs go first (skipped when present, mounted from the source repository when
 * both are on this registry), then each manifest by digest, children before the indexes that list them, and the
 * tag last in `commit`: a push that fails part-way leaves blobs and untagged manifests the registry's garbage
 * collection reclaims, and never a manifest that points at a missing blob.
 */
export class RegistryDestination implements ImageDestination {
  readonly canStoreEncryptedLayers = true;
  readonly canStoreIndex = true;
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  /** Uploads in progress, cancelled on abort so the registry can drop them early. */
  private readonly uploads = new Set<OpenUpload>();
  private closed = false;

  private constructor(
    readonly description: string,
    private readonly tag: string,
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

  /** A destination over a connection someone else keeps open (a whole repository's rewrap shares one). */
  static over(ref: ImageReference & { tag: string }, http: RegistryHttp): RegistryDestination {
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
      return expected !== undefined ? await this.putKnown(upload, source, expected) : await this.putStreamed(upload, source);
    } catch (e) {
      // The layer's own failure (HMAC, a refused path) explains more than the aborted request; but a request that
      // failed first (a registry gone) is the cause, and destroying the source below must not hide it.
      const cause = source.error ?? e;
      source.stop();
      content.destroy();
      await this.client.cancelUpload(upload.session);
      throw cause;
    } finally {
      this.uploads.delete(upload);
    }
  }

  /** Digest and size known up front: one monolithic PUT streaming the bytes. */
  private async putKnown(upload: OpenUpload, source: SourceWatch, expected: StoredBlob): Promise<StoredBlob> {
    const body = source.into(new PassThrough());
    await this.client.finishUpload(upload.session, expected.digest, { data: body, size: expected.size }, source.signal);
    return expected;
  }

  /**
   * Digest unknown until the last byte (a layer being encrypted): the bytes stream in one PATCH, or in chunks
   * when asked (or when the registry sets a minimum chunk size), hashed on the way, and the PUT names the digest
   * computed.
   */
  private async putStreamed(upload: OpenUpload, source: SourceWatch): Promise<StoredBlob> {
    const digesting = new DigestingStream();
    const minChunk = upload.session.minChunk;
    const chunkSize = this.chunkSize !== undefined || minChunk !== undefined ? Math.max(this.chunkSize ?? 0, minChunk ?? 0) : undefined;
    const hashed = source.into(digesting);
    if (chunkSize === undefined) upload.session = await this.client.appendUpload(upload.session, hashed, undefined, source.signal);
    else await this.putChunks(upload, hashed, chunkSize);
    const stored = { digest: digesting.digest(), size: digesting.size };
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

  async putManifest(bytes: Buffer, mediaType: string): Promise<StoredBlob> {
    const digest = await this.client.putManifest(sha256Digest(bytes), bytes, mediaType);
    this.manifests.set(digest, { bytes, mediaType });
    return { digest, size: bytes.length };
  }

  async commit(root: Descriptor): Promise<void> {
    const doc = this.manifests.get(root.digest);
    if (doc === undefined) throw new ImagegateError('DESTINATION', `${this.description}: manifest ${root.digest} was not pushed before commit; the copy is incomplete`);
    await this.client.putManifest(this.tag, doc.bytes, doc.mediaType);
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
 * reads fails and the request is aborted: a chunked upload whose producer gave up would otherwise wait for more
 * bytes (and the registry for them) until a timeout. It starts watching at once, so a failure that happens while
 * the upload session is being opened is not missed.
 */
class SourceWatch {
  error: Error | undefined;
  private stopped = false;
  private body: Duplex | undefined;
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

  /** Pipes the source into `body` and returns it, failing it with the source. */
  into<T extends Duplex>(body: T): T {
    this.body = body;
    this.throwIfFailed();
    this.source.pipe(body);
    return body;
  }

  /** Stops watching: the upload has already failed for its own reason. */
  stop(): void {
    this.stopped = true;
  }

  private fail(e: Error): void {
    if (this.stopped) return;
    this.error ??= e;
    this.body?.destroy(e);
    this.controller.abort(e);
  }
}
