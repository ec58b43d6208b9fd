import type { Descriptor } from '../image/descriptor.js';
import type { BlobReader } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { formatImageReference, parseImageReference, type ImageReference } from '../image/reference.js';
import type { manifestsOf } from '../image/tree.js';
import { normalizeEntryName } from '../unpack/layer-paths.js';
import { POD_BASE_ANNOTATION, POD_BASE_LAYERS_ANNOTATION, POD_PATHS_ANNOTATION } from './annotations.js';

/** Pod model: what the encryptor recorded, and the image config the swapped-in base would lack. */
export interface PodModelFacts {
  base: string;
  paths: string[];
  config: { entrypoint?: string[]; cmd?: string[]; env?: string[]; workingDir?: string; user?: string };
}

/** A pod-model image's facts, or why its annotations cannot be trusted to say what the pod runs. */
export type PodModelReading = { facts: PodModelFacts } | { problem: string };

/**
 * Reads a pod-model image and checks what its annotations claim against what the registry holds, since an image
 * author can write any annotation: the base must be pinned by digest, and its layers must be, digest for digest, the
 * plaintext bottom of the image the policy judged (as `imagegate encrypt --plain-base` checked when it wrote them).
 * Otherwise the pod would run an image the policy never saw beside the layers it decrypts. `baseLayers` reads the
 * base's layers from its registry (undefined for a multi-platform base). Undefined for an image that is not one.
 */
export async function readPodModel(
  source: BlobReader,
  manifests: ReturnType<typeof manifestsOf>,
  baseLayers: (base: ImageReference) => Promise<readonly Descriptor[] | undefined>,
): Promise<PodModelReading | undefined> {
  const facts = await podModelFacts(source, manifests);
  if (facts === undefined) return undefined;
  const manifest = manifests[0]!.node.manifest;
  const annotations = (manifest.json.annotations ?? {}) as Record<string, string>;
  let base: ImageReference;
  try {
    base = parseImageReference(facts.base);
  } catch {
    return { problem: `its plaintext base ${JSON.stringify(facts.base)} is not an image reference` };
  }
  if (base.digest === undefined) return { problem: `its plaintext base ${facts.base} is not pinned by digest, so it could change after admission` };
  const count = Number(annotations[POD_BASE_LAYERS_ANNOTATION]);
  const layers = manifest.layers;
  if (!Number.isSafeInteger(count) || count < 1 || count >= layers.length) {
    return { problem: `its ${POD_BASE_LAYERS_ANNOTATION} annotation does not name how many of its ${layers.length} layers are the plaintext base` };
  }
  if (layers.slice(0, count).some((l) => isEncryptedMediaType(l.mediaType))) return { problem: `its first ${count} layers, said to be the plaintext base, include an encrypted one` };
  const actual = await baseLayers(base);
  if (actual === undefined || actual.length !== count || actual.some((l, i) => l.digest !== layers[i]!.digest)) {
    return { problem: `its plaintext base ${formatImageReference(base)} is not the bottom ${count} layer(s) of this image, so the pod would run an image the policy never judged` };
  }
  const paths: string[] = [];
  try {
    for (const p of facts.paths) paths.push(normalizeEntryName(p, POD_PATHS_ANNOTATION));
  } catch {
    return { problem: `its ${POD_PATHS_ANNOTATION} annotation names a path outside the image` };
  }
  if (paths.length === 0 || paths.includes('')) return { problem: `its ${POD_PATHS_ANNOTATION} annotation names no directory for the encrypted layers` };
  return { facts: { ...facts, paths } };
}

/**
 * Recognises a pod-model image by the annotations `imagegate encrypt --plain-base` writes (annotations.ts) on its
 * only manifest, and reads the image config the swapped-in base would lack; undefined for any other image
 * (multi-platform images are not encrypted for the pod model).
 */
async function podModelFacts(source: BlobReader, manifests: ReturnType<typeof manifestsOf>): Promise<PodModelFacts | undefined> {
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
