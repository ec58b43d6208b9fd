import type { Readable } from 'node:stream';
import { ImagegateError } from '../../errors.js';
import { isDigest, sha256Digest, type Digest } from '../../image/digest.js';
import type { Descriptor } from '../../image/descriptor.js';
import { MAX_MANIFEST_BYTES } from '../../image/manifest.js';
import { MediaType } from '../../image/media-types.js';
import { readAll } from '../../util/streams.js';
import type { RegistryHttp, RegistryResponse } from './http.js';
import { headerValue, readCapped } from './response.js';

/** Every manifest type we read; registries pick what to send from this (docker-registry 2.8 hides OCI ones otherwise). */
const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ');

const OCTET_STREAM = 'application/octet-stream';

export interface FetchedManifest {
  bytes: Buffer;
  descriptor: Descriptor;
}

/** An open upload session: the registry's latest Location for it. */
export interface UploadSession {
  location: URL;
  /** The registry's minimum chunk size (OCI-Chunk-Min-Length), when it has one. */
  minChunk?: number;
}

/**
 * The Distribution API for one repository, one request per method. Knows the endpoints, headers and status codes;
 * knows nothing about images beyond bytes and digests.
 */
export class RepositoryClient {
  constructor(
    readonly http: RegistryHttp,
    /** Repository path, e.g. `team/app`. */
    readonly repository: string,
  ) {}

  get name(): string {
    return `${this.http.host}/${this.repository}`;
  }

  private scopes(push: boolean, extra: string[] = []): string[] {
    // The push scope first: some registries read only the first scope.
    return [`repository:${this.repository}:${push ? 'push,pull' : 'pull'}`, ...extra];
  }

  /** GET a manifest by tag or digest; the digest is computed from the bytes, and checked when the reference was one. */
  async getManifest(reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const res = await this.http.send({
      method: 'GET',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      expect: [200],
      scopes: this.scopes(false),
      what: `pull manifest ${this.name}${isDigest(reference) ? '@' : ':'}${reference}`,
      signal,
    });
    const declared = Number(headerValue(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
      await res.body.dump();
      throw new ImagegateError('BAD_FORMAT', `${this.name}: manifest ${reference} is ${declared} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`);
    }
    const bytes = await readAll(res.body, MAX_MANIFEST_BYTES, `manifest ${reference}`);
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && reference !== digest) {
      throw new ImagegateError('DIGEST_MISMATCH', `${this.name}: manifest ${reference} has content with digest ${digest}; the registry served something else`);
    }
    const contentType = (headerValue(res.headers, 'content-type') ?? '').split(';')[0]!.trim();
    const mediaType = mediaTypeOf(bytes) ?? contentType;
    if (mediaType === '') throw new ImagegateError('BAD_FORMAT', `${this.name}: manifest ${reference} has no media type`);
    return { bytes, descriptor: { mediaType, digest, size: bytes.length } };
  }

  /** PUT a manifest's exact bytes under a tag or its digest; the registry must agree on the digest. */
  async putManifest(reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<Digest> {
    const digest = sha256Digest(bytes);
    const res = await this.http.send({
      method: 'PUT',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
      expect: [201, 200],
      scopes: this.scopes(true),
      what: `push manifest ${digest} to ${this.name}${isDigest(reference) ? '' : `:${reference}`}`,
      signal,
    });
    await res.body.dump();
    const stored = headerValue(res.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== digest) {
      throw new ImagegateError('REGISTRY', `${this.name}: registry stored manifest ${digest} as ${stored}; it rewrote the bytes`);
    }
    return digest;
  }

  /** True when the repository holds the blob (HEAD). */
  async hasBlob(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const res = await this.http.send({
      method: 'HEAD',
      url: `/v2/${this.repository}/blobs/${digest}`,
      expect: [200, 404],
      scopes: this.scopes(true),
      what: `check for blob ${digest} in ${this.name}`,
      signal,
    });
    await res.body.dump();
    return res.status === 200;
  }

  /** Streams a blob (the caller verifies it); redirects to storage are followed without our credentials. */
  async getBlob(digest: Digest, signal?: AbortSignal): Promise<RegistryResponse> {
    return this.http.send({
      method: 'GET',
      url: `/v2/${this.repository}/blobs/${digest}`,
      expect: [200],
      scopes: this.scopes(false),
      what: `pull blob ${digest} from ${this.name}`,
      signal,
    });
  }

  /**
   * Asks the registry to link a blob from another repository it holds (cross-repository mount). True when it did;
   * false when it started an ordinary upload instead, which is cancelled.
   */
  async mountBlob(digest: Digest, from: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.http.send({
      method: 'POST',
      url: `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      headers: { 'content-length': '0' },
      expect: [201, 202],
      scopes: this.scopes(true, [`repository:${from}:pull`]),
      what: `mount blob ${digest} from ${from} into ${this.name}`,
      signal,
    });
    await res.body.dump();
    if (res.status === 201) return true;
    const location = headerValue(res.headers, 'location');
    if (location !== undefined) await this.cancelUpload({ location: new URL(location, res.url) });
    return false;
  }

  /** POST: opens an upload session. */
  async startUpload(signal?: AbortSignal): Promise<UploadSession> {
    const res = await this.http.send({
      method: 'POST',
      url: `/v2/${this.repository}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      expect: [202],
      scopes: this.scopes(true),
      what: `start a blob upload to ${this.name}`,
      signal,
    });
    await res.body.dump();
    const session = this.sessionFrom(res, 'start a blob upload');
    const min = Number(headerValue(res.headers, 'oci-chunk-min-length'));
    if (Number.isSafeInteger(min) && min > 0) session.minChunk = min;
    return session;
  }

  /**
   * PATCH: appends data to the session. With `range` (a known offset and length) this is one chunk of a chunked
   * upload; without, the body streams with unknown length (the "streamed" upload most registries accept).
   */
  async appendUpload(session: UploadSession, body: Buffer | Readable, range?: { offset: number; length: number }, signal?: AbortSignal): Promise<UploadSession> {
    const headers: Record<string, string> = { 'content-type': OCTET_STREAM };
    if (range !== undefined) {
      headers['content-range'] = `${range.offset}-${range.offset + range.length - 1}`;
      headers['content-length'] = String(range.length);
    }
    const res = await this.http.send({
      method: 'PATCH',
      url: session.location,
      headers,
      body,
      expect: [202],
      scopes: this.scopes(true),
      what: `upload to ${this.name}`,
      signal,
    });
    await res.body.dump();
    return { ...session, ...this.sessionFrom(res, 'upload a chunk') };
  }

  /** PUT ?digest=: closes the session, optionally sending (the rest of) the data with it. */
  async finishUpload(session: UploadSession, digest: Digest, body?: { data: Buffer | Readable; size: number }, signal?: AbortSignal): Promise<void> {
    const url = new URL(session.location);
    url.searchParams.set('digest', digest);
    const res = await this.http.send({
      method: 'PUT',
      url,
      headers: { 'content-type': OCTET_STREAM, 'content-length': String(body?.size ?? 0) },
      ...(body !== undefined ? { body: body.data } : {}),
      expect: [201],
      scopes: this.scopes(true),
      what: `upload blob ${digest} to ${this.name}`,
      signal,
    });
    await res.body.dump();
  }

  /** DELETE the session; best effort, used on failure so the registry can drop what was sent. */
  async cancelUpload(session: UploadSession): Promise<void> {
    try {
      const res = await this.http.send({
        method: 'DELETE',
        url: session.location,
        expect: [204, 200, 202, 404],
        scopes: this.scopes(true),
        what: `cancel an upload to ${this.name}`,
      });
      await res.body.dump();
    } catch {
      // The session expires on its own (docker-registry purges uploads after a week).
    }
  }

  /** Every tag, following `Link` pagination where the registry offers it. */
  async listTags(signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    let url: URL | string | undefined = `/v2/${this.repository}/tags/list`;
    while (url !== undefined) {
      const res: RegistryResponse = await this.http.send({
        method: 'GET',
        url,
        expect: [200],
        scopes: this.scopes(false),
        what: `list tags of ${this.name}`,
        signal,
      });
      const text = await readCapped(res.body, MAX_MANIFEST_BYTES);
      let json: { tags?: unknown };
      try {
        json = JSON.parse(text) as { tags?: unknown };
      } catch {
        throw new ImagegateError('REGISTRY', `list tags of ${this.name}: the registry answered with something that is not JSON`);
      }
      if (Array.isArray(json.tags)) tags.push(...json.tags.filter((t): t is string => typeof t === 'string'));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(headerValue(res.headers, 'link') ?? '');
      url = next !== null ? new URL(next[1]!, res.url) : undefined;
    }
    return tags;
  }

  private sessionFrom(res: RegistryResponse, what: string): UploadSession {
    const location = headerValue(res.headers, 'location');
    if (location === undefined) throw new ImagegateError('REGISTRY', `${what} to ${this.name}: the registry gave no upload Location`);
    // Always the newest Location: docker-registry signs the upload state into it and refuses stale ones.
    return { location: new URL(location, res.url) };
  }
}

function mediaTypeOf(bytes: Buffer): string | undefined {
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof json.mediaType === 'string' ? json.mediaType : undefined;
  } catch {
    return undefined;
  }
}

/** Every repository of a registry (`GET /v2/_catalog`, following `Link` pagination). */
export async function listRepositories(http: RegistryHttp, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  let url: URL | string | undefined = '/v2/_catalog?n=1000';
  while (url !== undefined) {
    const res: RegistryResponse = await http.send({ method: 'GET', url, expect: [200], scopes: ['registry:catalog:*'], what: `list the repositories of ${http.host}`, signal });
    const text = await readCapped(res.body, MAX_MANIFEST_BYTES);
    let json: { repositories?: unknown };
    try {
      json = JSON.parse(text) as { repositories?: unknown };
    } catch {
      throw new ImagegateError('REGISTRY', `list the repositories of ${http.host}: the registry answered with something that is not JSON`);
    }
    if (Array.isArray(json.repositories)) out.push(...json.repositories.filter((r): r is string => typeof r === 'string'));
    const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(headerValue(res.headers, 'link') ?? '');
    url = next !== null ? new URL(next[1]!, res.url) : undefined;
  }
  return out;
}
