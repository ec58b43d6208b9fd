import { formatPlatform } from '../image/descriptor.js';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { manifestEncryption } from '../crypto/layer-recipients.js';
import { POD_BASE_ANNOTATION, POD_PATHS_ANNOTATION } from '../ops/encrypt.js';
import type { PlatformImageFacts } from '../policy/types.js';
import type { RegistryHttp } from '../transport/registry/http.js';
import { RegistrySource } from '../transport/registry/registry-source.js';

/** What admission needs to know about an image: where it lives, what digest it is, and how each platform is encrypted. */
/** Pod model: what the encryptor recorded, and the image config the swapped-in base would lack. */
export interface PodModelFacts {
  base: string;
  paths: string[];
  config: { entrypoint?: string[]; cmd?: string[]; env?: string[]; workingDir?: string; user?: string };
}

export interface ResolvedImage {
  repository: string;
  digest: string;
  /** Set when the image was encrypted for the pod model (single-platform images). */
  pod?: PodModelFacts;
  platforms: PlatformImageFacts[];
}

/**
 * Resolves an image reference to its digest and reads its manifests (never its layers): per platform, how many
 * layers are encrypted, with which schemes and Vault keys.
 */
export async function resolveImage(image: string, connect: (ref: ImageReference) => Promise<RegistryHttp>, signal?: AbortSignal): Promise<ResolvedImage> {
  const ref = parseImageReference(image);
  const source = RegistrySource.over(ref, await connect(ref), signal);
  try {
    const root = await source.rootDescriptor();
    const tree = await loadImageTree(source, root, source.description);
    const platforms = manifestsOf(tree).map(({ node, platform }) => ({
      ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}),
      ...manifestEncryption(node.manifest.layers),
    }));
    const pod = await podModelFacts(source, manifestsOf(tree));
    return { repository: canonicalRepository(ref), digest: root.digest, platforms, ...(pod !== undefined ? { pod } : {}) };
  } finally {
    await source.close();
  }
}

async function podModelFacts(source: RegistrySource, manifests: ReturnType<typeof manifestsOf>): Promise<PodModelFacts | undefined> {
  const first = manifests[0];
  const annotations = (first?.node.manifest.json.annotations ?? {}) as Record<string, string>;
  const base = annotations[POD_BASE_ANNOTATION];
  if (first === undefined || base === undefined || manifests.length !== 1) return undefined;
  const json = JSON.parse((await source.readBlob(first.node.manifest.config)).toString('utf8')) as { config?: Record<string, unknown> };
  const c = json.config ?? {};
  const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  const config: PodModelFacts['config'] = {};
  const entrypoint = strings(c.Entrypoint);
  const cmd = strings(c.Cmd);
  const env = strings(c.Env);
  if (entrypoint !== undefined) config.entrypoint = entrypoint;
  if (cmd !== undefined) config.cmd = cmd;
  if (env !== undefined) config.env = env;
  if (typeof c.WorkingDir === 'string' && c.WorkingDir !== '') config.workingDir = c.WorkingDir;
  if (typeof c.User === 'string' && c.User !== '') config.user = c.User;
  return { base, paths: (annotations[POD_PATHS_ANNOTATION] ?? '').split(',').filter((p) => p !== ''), config };
}
