import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { ImagegateError } from '../../errors.js';
import { DigestingStream, sha256Digest } from '../../image/digest.js';
import type { Descriptor } from '../../image/descriptor.js';
import type { ImageDestination, ImageSource, StoredBlob } from '../../image/image.js';
import type { ImageReference } from '../../image/reference.js';
import { RepositoryClient, type UploadSession } from './client.js';
import { connectRegistry, describeRegistryReference, type RegistryOptions } from './location.js';
import { RegistrySource } from './registry-source.js';

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
  private readonly sessions = new Set<UploadSession>();
  private closed = false;

  private constructor(
    readonly description: string,
    private readonly tag: string,
    private readonly client: RepositoryClient,
    private readonly chunkSize: number | undefined,
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

  async reuseBlob(blob: StoredBlob, source: ImageSource): Promise<boolean> {
    if (await this.client.hasBlob(blob.digest)) return true;
    const sameRegistry = source instanceof RegistrySource && source.registryHost === this.client.http.host && source.reference.path !== this.client.repository;
    return sameRegistry && (await this.client.mountBlob(blob.digest, source.reference.path));
  }

  async putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    let session: UploadSession;
    try {
      session = await this.client.startUpload();
    } catch (e) {
      content.destroy();
      throw e;
    }
    this.sessions.add(session);
    try {
      const stored = expected !== undefined
        ? await this.putKnown(session, content, expected)
        : await this.putStreamed(session, content);
      this.sessions.delete(session);
      return stored;
    } catch (e) {
      content.destroy();
      this.sessions.delete(session);
      await this.client.cancelUpload(session);
      throw e;
    }
  }

  /** Digest and size known up front: one monolithic PUT streaming the bytes. */
  private async putKnown(session: UploadSession, content: Readable, expected: StoredBlob): Promise<StoredBlob> {
    await this.client.finishUpload(session, expected.digest, { data: content, size: expected.size });
    return expected;
  }

  /**
   * Digest unknown until the last byte (a layer being encrypted): the bytes stream in one PATCH, or in chunks
   * when asked, hashed on the way, and the PUT names the digest computed.
   */
  private async putStreamed(session: UploadSession, content: Readable): Promise<StoredBlob> {
    const digesting = new DigestingStream();
    const chunkSize = this.chunkSize !== undefined || session.minChunk !== undefined ? Math.max(this.chunkSize ?? 0, session.minChunk ?? 0) : undefined;
    let current = session;
    if (chunkSize === undefined) {
      const body = content.pipe(digesting);
      content.on('error', (e) => digesting.destroy(e));
      current = await this.client.appendUpload(current, body);
    } else {
      current = await this.putChunks(current, content.pipe(digesting), chunkSize);
    }
    const stored = { digest: digesting.digest(), size: digesting.size };
    await this.client.finishUpload(current, stored.digest);
    return stored;
  }

  /** Chunked upload: PATCHes of `chunkSize` bytes with Content-Range; memory is bounded by one chunk. */
  private async putChunks(session: UploadSession, content: Readable, chunkSize: number): Promise<UploadSession> {
    let current = session;
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingSize = 0;
    const flush = async (): Promise<void> => {
      if (pendingSize === 0) return;
      const chunk = Buffer.concat(pending, pendingSize);
      pending = [];
      pendingSize = 0;
      this.sessions.delete(current);
      current = await this.client.appendUpload(current, chunk, { offset, length: chunk.length });
      this.sessions.add(current);
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
    return current;
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
    await Promise.all([...this.sessions].map((s) => this.client.cancelUpload(s)));
    await this.close();
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.http.close();
  }
}
