import type { Readable } from 'node:stream';
import { ImagegateError } from '../../errors.js';
import type { Descriptor } from '../../image/descriptor.js';
import type { ImageSource } from '../../image/image.js';
import { MAX_MANIFEST_BYTES } from '../../image/manifest.js';
import type { ImageReference } from '../../image/reference.js';
import { readVerifiedBlob, verifiedBlobStream } from '../verified-blob.js';
import { RepositoryClient, type FetchedManifest } from './client.js';
import type { RegistryHttp } from './http.js';
import { headerValue } from './response.js';
import { connectRegistry, describeRegistryReference, type RegistryOptions } from './location.js';
import { networkError } from './registry-error.js';

/**
 * An image in a registry (`docker://host/repo:tag` or `@digest`). The root manifest is fetched once and pinned by
 * its digest, so a tag moved during the copy cannot mix two images; every blob streams straight from the registry
 * through digest verification.
 */
export class RegistrySource implements ImageSource {
  private root: FetchedManifest | undefined;

  private constructor(
    readonly description: string,
    readonly reference: ImageReference,
    readonly client: RepositoryClient,
    /** Whether close() closes the connection: not when it is shared (see `over`). */
    private readonly ownsConnection: boolean,
    /** Cancels every request this source makes (a webhook review whose time ran out). */
    private readonly signal?: AbortSignal,
  ) {}

  static async open(ref: ImageReference, options: RegistryOptions): Promise<RegistrySource> {
    const http = await connectRegistry(ref, options);
    return new RegistrySource(describeRegistryReference(ref), ref, new RepositoryClient(http, ref.path), true);
  }

  /** The image over a connection someone else keeps open (the webhook's, shared by its look-ups). */
  static over(ref: ImageReference, http: RegistryHttp, signal?: AbortSignal): RegistrySource {
    return new RegistrySource(describeRegistryReference(ref), ref, new RepositoryClient(http, ref.path), false, signal);
  }

  /** Over a shared connection, starting from a root manifest already fetched (by tag), so it is not fetched twice. */
  static fromFetched(ref: ImageReference, http: RegistryHttp, root: FetchedManifest): RegistrySource {
    const source = new RegistrySource(describeRegistryReference(ref), ref, new RepositoryClient(http, ref.path), false);
    source.root = root;
    return source;
  }

  /** `host/repository`, to tell whether a destination on the same registry can mount our blobs. */
  get registryHost(): string {
    return this.client.http.host;
  }

  async rootDescriptor(): Promise<Descriptor> {
    this.root ??= await this.client.getManifest(this.reference.digest ?? this.reference.tag ?? 'latest', this.signal);
    return this.root.descriptor;
  }

  async readManifest(desc: Descriptor): Promise<Buffer> {
    if (this.root !== undefined && desc.digest === this.root.descriptor.digest) return this.root.bytes;
    const fetched = await this.client.getManifest(desc.digest, this.signal);
    if (fetched.bytes.length !== desc.size) {
      throw new ImagegateError('DIGEST_MISMATCH', `${this.description}: manifest ${desc.digest} is ${fetched.bytes.length} bytes, but its descriptor declares ${desc.size}`);
    }
    return fetched.bytes;
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const res = await this.client.getBlob(desc.digest, this.signal);
    const length = Number(headerValue(res.headers, 'content-length'));
    if (Number.isFinite(length) && length !== desc.size) {
      await res.body.dump();
      throw new ImagegateError('DIGEST_MISMATCH', `${this.description}: blob ${desc.digest} is served as ${length} bytes, but its descriptor declares ${desc.size}`);
    }
    const ctx = { method: 'GET', what: `pull blob ${desc.digest} from ${this.client.name}`, host: this.client.http.host };
    // A connection lost mid-blob is temporary: the copy driver reads the blob again.
    return verifiedBlobStream(res.body, desc, (e) => networkError(e, ctx));
  }

  readBlob(desc: Descriptor, limit = MAX_MANIFEST_BYTES): Promise<Buffer> {
    return readVerifiedBlob((d) => this.openBlob(d), desc, limit, this.description);
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.client.http.close();
  }
}
