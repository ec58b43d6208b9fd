import type { ImageReference } from '../../image/reference.js';
import { matchesAnyGlob } from '../../util/glob.js';
import { listRepositories, RepositoryClient, type FetchedManifest } from './client.js';
import type { RegistryHttp } from './http.js';
import { connectRegistry, type RegistryOptions } from './location.js';
import { RegistryDestination } from './registry-destination.js';
import { RegistrySource } from './registry-source.js';

/** A root manifest or index as a tag named it when it was read: its exact bytes and descriptor. */
export type TaggedRoot = FetchedManifest;

/**
 * One registry as the ops that walk many of its images see it (audit, rewrap): its repositories, their tags, the
 * image each tag names as a source, and destinations and tags to write back, all over one connection (one pool, one
 * ping, one credential look-up) for the whole run. `docker://` sources and destinations each name one image; this is
 * the transport for "every image of a repository, or of a registry".
 */
export class RegistryCatalog {
  private constructor(
    readonly domain: string,
    private readonly http: RegistryHttp,
  ) {}

  /** Connects with the credentials that apply to `scope`: a repository, or the whole registry (`path: ''`). */
  static async open(scope: { domain: string; path: string }, options: RegistryOptions): Promise<RegistryCatalog> {
    return new RegistryCatalog(scope.domain, await connectRegistry(scope, options));
  }

  /**
   * The registry's repositories (its catalog), sorted, keeping those whose path matches one of `globs` (`*` within a
   * segment, `**` across), or all of them without globs: how a registry too large for one run is split into shards.
   */
  async repositories(globs: readonly string[] = []): Promise<string[]> {
    const all = (await listRepositories(this.http)).sort();
    return globs.length === 0 ? all : all.filter((r) => matchesAnyGlob(r, globs));
  }

  /** Every tag of `repository`, as the registry lists them. */
  tags(repository: string): Promise<string[]> {
    return this.client(repository).listTags();
  }

  /** The root manifest or index `tag` names now; `source` reads the image from it without fetching it again. */
  root(repository: string, tag: string): Promise<TaggedRoot> {
    return this.client(repository).getManifest(tag);
  }

  /** The image whose root was read with `root`, named `ref` (a tag of it, or its digest) in messages. */
  source(ref: ImageReference, root: TaggedRoot): RegistrySource {
    return RegistrySource.fromFetched(ref, this.http, root);
  }

  /** A destination in `repository` that pushes by digest only; `putTag` then moves each tag, which a registry may refuse. */
  destination(repository: string): RegistryDestination {
    return RegistryDestination.over({ domain: this.domain, path: repository }, this.http);
  }

  /** Points `tag` of `repository` at `manifest` (PUT of its exact bytes; its blobs and children are already there). */
  async putTag(repository: string, tag: string, manifest: { bytes: Buffer; mediaType: string }): Promise<void> {
    await this.client(repository).putManifest(tag, manifest.bytes, manifest.mediaType);
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  private client(repository: string): RepositoryClient {
    return new RepositoryClient(this.http, repository);
  }
}
