import { ImagegateError } from '../errors.js';
import type { ImageSource } from '../image/image.js';
import { loadImageTree, manifestsOf } from '../image/tree.js';
import { normalizeEntryName } from '../unpack/layer-paths.js';

/**
 * The pod model: the image's first `baseLayers` layers are a plaintext base image (`base`, pinned) that runs as the
 * container; the rest are encrypted and may only write under `paths`, where `imagegate init --unpack` puts them.
 */
export interface PodModelSettings {
  base: string;
  baseLayers: number;
  paths: string[];
}

/**
 * Checks that `base` (a registry image) is the plaintext bottom of `source` — its layers are the first layers of
 * every image in `source`, digest for digest — and returns the pod-model settings for encrypting the rest.
 */
export async function podModelSettings(source: ImageSource, base: ImageSource, repository: string | undefined, paths: string[]): Promise<PodModelSettings> {
  if (repository === undefined) throw new ImagegateError('USAGE', `--plain-base ${base.description}: the plaintext base must be a registry image (docker://HOST/REPO[:TAG]), which the pod runs`);
  if (paths.length === 0) throw new ImagegateError('USAGE', '--plain-base needs --paths: the image paths the encrypted layers write (e.g. app,etc/app)');
  const normalized = paths.map((p) => normalizeEntryName(p, '--paths'));
  if (normalized.some((p) => p === '')) throw new ImagegateError('USAGE', '--paths cannot name the image root: declare the directories the encrypted layers write');
  const baseRoot = await base.rootDescriptor();
  const baseManifests = manifestsOf(await loadImageTree(base, baseRoot, base.description));
  if (baseManifests.length !== 1) throw new ImagegateError('UNSUPPORTED', `${base.description} is a multi-platform index; the pod model takes a single-platform base for now`);
  const baseLayers = baseManifests[0]!.node.manifest.layers;
  for (const { node } of manifestsOf(await loadImageTree(source, await source.rootDescriptor(), source.description))) {
    const layers = node.manifest.layers;
    const prefix = baseLayers.every((l, i) => layers[i]?.digest === l.digest);
    if (!prefix || layers.length <= baseLayers.length) {
      throw new ImagegateError(
        'USAGE',
        `${source.description} (${node.descriptor.digest}) does not start with the layers of ${base.description}; build it FROM that base (or choose the right base)`,
      );
    }
  }
  return { base: `${repository}@${baseRoot.digest}`, baseLayers: baseLayers.length, paths: normalized };
}
