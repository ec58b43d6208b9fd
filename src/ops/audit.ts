import { ImagegateError } from '../errors.js';
import { formatPlatform } from '../image/descriptor.js';
import { parseImageReference, type ImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import type { BlobReader } from '../image/image.js';
import { limiter } from '../util/limit.js';
import type { RegistryOptions } from '../transport/registry/location.js';
import { RegistryCatalog, type TaggedRoot } from '../transport/registry/registry-catalog.js';
import type { RegistrySource } from '../transport/registry/registry-source.js';
import { matchesAnyGlob } from '../util/glob.js';
import type { TransitKeyInfo } from '../vault/transit.js';
import { parseTransitKey, readTransitKey, formatTransitKey, type TransitKey } from '../vault/transit-key.js';
import { canonicalBindingName, canonicalRepository, canonicalRepositoryGlob } from '../image/reference.js';
import type { WrappedKeyReference } from '../crypto/schemes/key-scheme.js';
import { manifestEncryption } from '../crypto/layer-recipients.js';

export interface AuditOptions {
  /** Repository globs (`host/path`) whose images must be encrypted. */
  protected: string[];
  /** Lowest acceptable key version per Transit key (`mount/keys/name`), or for every key under `*`. */
  minVersions: Map<string, number>;
  /**
   * Only the registry's repositories whose path matches one of these globs (`team-0*\/**`): one shard of a registry
   * too large for one run. Empty: all.
   */
  repositories?: string[];
  /** Reads a Transit key's versions from Vault, to flag keys wrapped with versions Vault no longer decrypts. */
  keyInfo?: (key: TransitKey) => Promise<TransitKeyInfo>;
}

export interface AuditedImage {
  repository: string;
  tags: string[];
  /** The tag's manifest or index digest; absent when it could not be read (see `problem`). */
  digest?: string;
  platform?: string;
  /** The platform manifest's digest (equal to `digest` for a single-platform image); absent when unread. */
  manifest?: string;
  created?: string;
  layers: number;
  encryptedLayers: number;
  schemes: string[];
  /** Keys a key service holds (Vault Transit): the version is the ciphertext's, never the item's own label. */
  vaultKeys: WrappedKeyReference[];
  flags: string[];
  /** Why a repository, tag or image could not be read (flags `unreadable-*`). */
  problem?: string;
}

export interface AuditReport {
  registry: string;
  images: AuditedImage[];
}

/**
 * Reports every tag of a registry (or of one repository): which layers are encrypted, with which schemes, Vault
 * keys, key versions and bindings, and the image's creation time, with flags for what needs attention: plaintext
 * images in protected repositories, key versions below the minimum or retired in Vault, keys bound elsewhere.
 * Reads manifests and configs only, never layers.
 */
export async function auditRegistry(target: ImageReference | { domain: string; path?: undefined }, registry: RegistryOptions, options: AuditOptions): Promise<AuditReport> {
  // One connection (one ping, one credential look-up) for the whole registry; repositories, then images, in parallel.
  const catalog = await RegistryCatalog.open({ domain: target.domain, path: target.path ?? '' }, registry);
  const protectedGlobs = options.protected.map(canonicalRepositoryGlob);
  const run: AuditRun = { catalog, options, protectedGlobs, keyInfos: new Map(), configs: new Map(), limit: limiter(REQUESTS_AT_ONCE) };
  try {
    const repositories = target.path !== undefined && target.path !== '' ? [target.path] : await catalog.repositories(options.repositories ?? []);
    const perRepository = await Promise.all(repositories.map((repository) => auditRepository(target, repository, run)));
    return { registry: target.domain, images: perRepository.flat() };
  } finally {
    await catalog.close();
  }
}

/** Requests an audit has in flight at once: enough to hide a far registry's round trips, few enough to be polite. */
const REQUESTS_AT_ONCE = 16;

interface AuditRun {
  catalog: RegistryCatalog;
  options: AuditOptions;
  /** `--protect` globs in canonical form, compared with canonical repository names as the webhook does. */
  protectedGlobs: string[];
  keyInfos: Map<string, Promise<TransitKeyInfo | undefined>>;
  /** Image configs by digest: images built from one another share them. */
  configs: Map<string, Promise<string | undefined>>;
  limit: <T>(task: () => Promise<T>) => Promise<T>;
}

/**
 * One repository's rows. What cannot be read becomes a flagged row naming the problem, and the audit goes on: an
 * interrupted first push leaves a repository with blobs but no manifest (the registry then knows no such name), or a
 * tag whose manifest is gone, and one such repository must not hide the rest of the registry.
 */
async function auditRepository(target: ImageReference | { domain: string }, repository: string, run: AuditRun): Promise<AuditedImage[]> {
  const { catalog } = run;
  let tags: string[];
  try {
    tags = 'path' in target && target.path !== undefined && 'tag' in target && target.tag !== undefined ? [target.tag] : (await run.limit(() => catalog.tags(repository))).sort();
  } catch (e) {
    return [unreadable(target.domain, repository, [], 'unreadable-repository', e)];
  }
  // Each tag's manifest is fetched once: grouped by digest, and then the root of its image's tree.
  const fetched = await Promise.all(
    tags.map((tag) =>
      run.limit(() => catalog.root(repository, tag)).then(
        (root) => ({ tag, root }),
        (e: unknown) => ({ tag, error: e }),
      ),
    ),
  );
  const out: AuditedImage[] = [];
  const byDigest = new Map<string, { tags: string[]; root: TaggedRoot }>();
  for (const f of fetched) {
    if ('error' in f) {
      out.push(unreadable(target.domain, repository, [f.tag], 'unreadable-manifest', f.error));
      continue;
    }
    const group = byDigest.get(f.root.descriptor.digest);
    if (group === undefined) byDigest.set(f.root.descriptor.digest, { tags: [f.tag], root: f.root });
    else group.tags.push(f.tag);
  }
  const images = await Promise.all(
    [...byDigest].map(([digest, group]) =>
      auditImage(target.domain, repository, group.tags, digest, group.root, run).catch((e: unknown) => [{ ...unreadable(target.domain, repository, group.tags, 'unreadable-image', e), digest }]),
    ),
  );
  return [...out, ...images.flat()];
}

/** A flagged row for what could not be read; an interrupted audit (Ctrl-C) is not a finding, so it still stops the run. */
function unreadable(domain: string, path: string, tags: string[], flag: string, why: unknown): AuditedImage {
  if (why instanceof ImagegateError && why.code === 'INTERRUPTED') throw why;
  const problem = why instanceof Error ? why.message : String(why);
  return { repository: `${domain}/${path}`, tags, layers: 0, encryptedLayers: 0, schemes: [], vaultKeys: [], flags: [flag], problem };
}

async function auditImage(domain: string, path: string, tags: string[], digest: string, fetchedRoot: TaggedRoot, run: AuditRun): Promise<AuditedImage[]> {
  const { options, keyInfos } = run;
  const repository = `${domain}/${path}`;
  const source = run.catalog.source({ domain, path, digest: digest as `sha256:${string}` }, fetchedRoot);
  try {
    const root = await loadImageTree(limitedReader(source, run.limit), await source.rootDescriptor(), source.description);
    const out: AuditedImage[] = [];
    for (const { node, platform } of manifestsOf(root)) {
      const layers = node.manifest.layers;
      const { encryptedLayers, schemes, serviceKeys: vaultKeys } = manifestEncryption(layers);
      const config = node.manifest.config;
      let created = run.configs.get(config.digest);
      if (created === undefined) {
        created = run.limit(() => createdOf(source, config));
        run.configs.set(config.digest, created);
      }
      const createdAt = await created;
      const flags: string[] = [];
      // Names compared in canonical form, like the webhook's: no spelling of a protected repository escapes the glob.
      const canonical = canonicalRepository({ domain, path });
      const isProtected = matchesAnyGlob(canonical, run.protectedGlobs);
      if (isProtected && encryptedLayers === 0) flags.push('plaintext-in-protected-repository');
      else if (isProtected && encryptedLayers < layers.length) flags.push('partly-plaintext');
      for (const k of uniqueKeys(vaultKeys)) {
        const min = options.minVersions.get(k.key) ?? options.minVersions.get('*');
        if (k.tampered === true) flags.push(`tampered-key-version-label:${k.key}:v${k.version}`);
        if (min !== undefined && k.version < min) flags.push(`key-version-below-minimum:${k.key}:v${k.version}<v${min}`);
        if (canonicalBindingName(k.binding) !== canonical) flags.push(`bound-to-other-repository:${k.binding}`);
        const transitKey = readTransitKey(k.key);
        if (options.keyInfo !== undefined && transitKey !== undefined) {
          let info = keyInfos.get(k.key);
          if (info === undefined) {
            info = options.keyInfo(transitKey).catch(() => undefined);
            keyInfos.set(k.key, info);
          }
          const i = await info;
          if (i !== undefined && k.version < i.minDecryptionVersion) flags.push(`key-version-retired:${k.key}:v${k.version}`);
        }
      }
      out.push({
        repository,
        tags,
        digest,
        ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}),
        manifest: node.descriptor.digest,
        ...(createdAt !== undefined ? { created: createdAt } : {}),
        layers: layers.length,
        encryptedLayers,
        schemes,
        vaultKeys: uniqueKeys(vaultKeys),
        flags: [...new Set(flags)],
      });
    }
    return out;
  } finally {
    await source.close();
  }
}

function uniqueKeys(keys: WrappedKeyReference[]): WrappedKeyReference[] {
  const seen = new Map<string, WrappedKeyReference>();
  for (const k of keys) seen.set(`${k.key} ${k.version} ${k.binding} ${k.tampered === true}`, k);
  return [...seen.values()].sort((a, b) => a.key.localeCompare(b.key) || a.version - b.version);
}

/** A reader whose manifest requests wait their turn in the audit's request limit. */
function limitedReader(source: RegistrySource, limit: AuditRun['limit']): BlobReader {
  return {
    openBlob: (d) => limit(() => source.openBlob(d)),
    readBlob: (d, max) => limit(() => source.readBlob(d, max)),
    readManifest: (d) => limit(() => source.readManifest(d)),
  };
}

async function createdOf(source: RegistrySource, config: { digest: string; size: number; mediaType: string }): Promise<string | undefined> {
  try {
    const json = JSON.parse((await source.readBlob(config as Parameters<RegistrySource['readBlob']>[0])).toString('utf8')) as { created?: unknown };
    return typeof json.created === 'string' ? json.created : undefined;
  } catch (e) {
    if (e instanceof ImagegateError && e.code !== 'BAD_FORMAT') throw e;
    return undefined;
  }
}

/** `HOST[:PORT]` (the whole registry) or `[docker://]HOST/REPO[:TAG]`. */
export function parseAuditTarget(target: string): ImageReference | { domain: string } {
  const text = target.replace(/^docker:\/\//, '');
  return text.includes('/') ? parseImageReference(text) : { domain: text };
}

/** `--min-version` values: `mount/keys/name=N` for one key, or `N` for every key (stored under `*`). */
export function parseMinVersions(specs: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const spec of specs) {
    const eq = spec.lastIndexOf('=');
    const n = Number(eq >= 0 ? spec.slice(eq + 1) : spec);
    if (!Number.isSafeInteger(n) || n < 1) throw new ImagegateError('USAGE', `--min-version ${JSON.stringify(spec)} must be [mount/keys/name=]N with N ≥ 1`);
    // Keyed by the one spelling audit compares with, whichever form was typed (`transit/app` or `transit/keys/app`).
    out.set(eq >= 0 ? formatTransitKey(parseTransitKey(spec.slice(0, eq))) : '*', n);
  }
  return out;
}
