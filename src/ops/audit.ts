import { ImagegateError } from '../errors.js';
import { formatPlatform } from '../image/descriptor.js';
import { parseImageReference, type ImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { listRepositories, RepositoryClient } from '../transport/registry/client.js';
import { connectRegistry, type RegistryOptions } from '../transport/registry/location.js';
import { RegistrySource } from '../transport/registry/registry-source.js';
import { matchesAnyGlob } from '../util/glob.js';
import type { TransitKeyInfo, TransitKeyRef } from '../vault/transit.js';
import { canonicalBindingName, canonicalRepository } from '../image/reference.js';
import type { WrappedKeyReference } from '../crypto/wrappers/vault.js';
import { canonicalRepositoryGlob } from '../policy/load-policy.js';
import { manifestEncryption } from './recipients.js';

export interface AuditOptions {
  /** Repository globs (`host/path`) whose images must be encrypted. */
  protected: string[];
  /** Lowest acceptable key version per Transit key (`mount/keys/name`), or for every key under `*`. */
  minVersions: Map<string, number>;
  /** Reads a Transit key's versions from Vault, to flag keys wrapped with versions Vault no longer decrypts. */
  keyInfo?: (key: TransitKeyRef) => Promise<TransitKeyInfo>;
}

/** A wrapped key as audit lists it; the version is the Transit ciphertext's, never the item's own label. */
export type AuditedKey = WrappedKeyReference;

export interface AuditedImage {
  repository: string;
  tags: string[];
  /** The tag's manifest or index digest. */
  digest: string;
  platform?: string;
  /** The platform manifest's digest (equal to `digest` for a single-platform image). */
  manifest: string;
  created?: string;
  layers: number;
  encryptedLayers: number;
  schemes: string[];
  vaultKeys: AuditedKey[];
  flags: string[];
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
  const http = await connectRegistry({ domain: target.domain, path: target.path ?? '' }, registry);
  const images: AuditedImage[] = [];
  const keyInfos = new Map<string, Promise<TransitKeyInfo | undefined>>();
  try {
    const repositories = target.path !== undefined && target.path !== '' ? [target.path] : (await listRepositories(http)).sort();
    for (const repository of repositories) {
      const client = new RepositoryClient(http, repository);
      const tags = target.path !== undefined && 'tag' in target && target.tag !== undefined ? [target.tag] : (await client.listTags()).sort();
      const byDigest = new Map<string, string[]>();
      for (const tag of tags) {
        const { descriptor } = await client.getManifest(tag);
        byDigest.set(descriptor.digest, [...(byDigest.get(descriptor.digest) ?? []), tag]);
      }
      for (const [digest, group] of byDigest) {
        images.push(...(await auditImage(`${target.domain}/${repository}`, group, digest, registry, options, keyInfos)));
      }
    }
  } finally {
    await http.close();
  }
  return { registry: target.domain, images };
}

async function auditImage(
  repository: string,
  tags: string[],
  digest: string,
  registry: RegistryOptions,
  options: AuditOptions,
  keyInfos: Map<string, Promise<TransitKeyInfo | undefined>>,
): Promise<AuditedImage[]> {
  const [domain, ...path] = repository.split('/');
  const source = await RegistrySource.open({ domain: domain!, path: path.join('/'), digest: digest as `sha256:${string}` }, registry);
  try {
    const root = await loadImageTree(source, await source.rootDescriptor(), source.description);
    const out: AuditedImage[] = [];
    for (const { node, platform } of manifestsOf(root)) {
      const layers = node.manifest.layers;
      const { encryptedLayers, schemes, vaultKeys } = manifestEncryption(layers);
      const created = await createdOf(source, node.manifest.config);
      const flags: string[] = [];
      // Names compared in canonical form, like the webhook's: no spelling of a protected repository escapes the glob.
      const canonical = canonicalRepository({ domain: domain!, path: path.join('/') });
      const isProtected = matchesAnyGlob(canonical, options.protected.map(canonicalRepositoryGlob));
      if (isProtected && encryptedLayers === 0) flags.push('plaintext-in-protected-repository');
      else if (isProtected && encryptedLayers < layers.length) flags.push('partly-plaintext');
      for (const k of uniqueKeys(vaultKeys)) {
        const min = options.minVersions.get(k.key) ?? options.minVersions.get('*');
        if (k.tampered === true) flags.push(`tampered-key-version-label:${k.key}:v${k.version}`);
        if (min !== undefined && k.version < min) flags.push(`key-version-below-minimum:${k.key}:v${k.version}<v${min}`);
        if (canonicalBindingName(k.binding) !== canonical) flags.push(`bound-to-other-repository:${k.binding}`);
        if (options.keyInfo !== undefined) {
          const [mount, name] = k.key.split('/keys/') as [string, string];
          let info = keyInfos.get(k.key);
          if (info === undefined) {
            info = options.keyInfo({ mount, name }).catch(() => undefined);
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
        ...(created !== undefined ? { created } : {}),
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

function uniqueKeys(keys: AuditedKey[]): AuditedKey[] {
  const seen = new Map<string, AuditedKey>();
  for (const k of keys) seen.set(`${k.key} ${k.version} ${k.binding} ${k.tampered === true}`, k);
  return [...seen.values()].sort((a, b) => a.key.localeCompare(b.key) || a.version - b.version);
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
    out.set(eq >= 0 ? spec.slice(0, eq) : '*', n);
  }
  return out;
}
