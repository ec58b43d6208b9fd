import { createHash } from 'node:crypto';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import type { RegistryCredentials } from '../transport/registry/credentials.js';
import type { RegistryHttp } from '../transport/registry/http.js';
import { connectRegistry, type RegistryOptions } from '../transport/registry/location.js';
import type { AdmissionContext } from './admit.js';
import { resolveImage, type ResolvedImage } from './image-facts.js';
import { isLookUpCancelled } from './look-up-budget.js';
import { TtlCache, type TtlCacheOptions } from './ttl-cache.js';

/** Reads a namespace's pull secrets (`kubernetes.io/dockerconfigjson`) for a registry host, if allowed to. */
export type PullSecretLookup = (namespace: string, secretNames: string[], host: string) => Promise<RegistryCredentials | undefined>;

const CONNECTION_TTL_MS = 5 * 60_000;

export interface ImageResolverOptions {
  /** The webhook's own registry settings and credentials. */
  registry: RegistryOptions;
  cache: TtlCacheOptions;
  pullSecrets?: PullSecretLookup;
}

/**
 * Image resolution for admission: the pod's pull secrets first (where the webhook may read them), then the
 * webhook's own credentials; results cached per image and credential, failures briefly, concurrent asks shared.
 */
export class ImageResolver {
  readonly cache: TtlCache<ResolvedImage>;
  /**
   * Open registry connections, per host and credential set, reused by later look-ups: a cold look-up then costs its
   * manifest requests, not a new TLS handshake, `/v2/` ping, token request and auth-file read each time. They are
   * renewed every few minutes, so a rotated auth file or pull secret is picked up; an evicted one is not closed,
   * its idle sockets time out on their own.
   */
  private readonly connections = new TtlCache<RegistryHttp>({ maxEntries: 256, ttlMs: CONNECTION_TTL_MS, negativeTtlMs: 0 });

  constructor(private readonly options: ImageResolverOptions) {
    // A look-up cancelled because its review ran out of time says nothing about the image: the next review tries again.
    this.cache = new TtlCache({ ...options.cache, forgets: isLookUpCancelled });
  }

  async resolve(image: string, ctx: AdmissionContext): Promise<ResolvedImage> {
    const ref = parseImageReference(image);
    const host = ref.domain;
    const fromPod = ctx.pullSecrets.length > 0 && this.options.pullSecrets !== undefined ? await this.options.pullSecrets(ctx.namespace, ctx.pullSecrets, host) : undefined;
    // A digest names the same content for everyone; a tag may differ per credential (a private mirror), so key by both.
    const who = fromPod !== undefined ? `${ctx.namespace}/${ctx.pullSecrets.join(',')}` : '';
    const registry = fromPod !== undefined ? { ...this.options.registry, credentials: fromPod } : this.options.registry;
    // Keyed by the credentials themselves (hashed), not the secret's name, so a rotated secret gets a new connection.
    const credentials = fromPod !== undefined ? createHash('sha256').update(JSON.stringify(fromPod)).digest('hex') : '';
    const connect = (r: ImageReference): Promise<RegistryHttp> => this.connections.get(`${credentials}|${r.domain}`, () => connectRegistry(r, registry));
    // Every spelling of one image shares an entry: `LOCALHOST:443/app:1` is `localhost/app:1`.
    const name = `${canonicalRepository(ref)}${ref.digest !== undefined ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`}`;
    const signal = ctx.signal;
    return this.cache.get(`${who}|${name}`, () => resolveImage(image, connect, signal));
  }
}
