import type { BlobReader } from '../image/image.js';
import type { manifestsOf } from '../image/tree.js';
import { POD_BASE_ANNOTATION, POD_PATHS_ANNOTATION } from './annotations.js';

/** Pod model: what the encryptor recorded, and the image config the swapped-in base would lack. */
export interface PodModelFacts {
  base: string;
  paths: string[];
  config: { entrypoint?: string[]; cmd?: string[]; env?: string[]; workingDir?: string; user?: string };
}

/**
 * Recognises a pod-model image by the annotations `imagegate encrypt --plain-base` writes (annotations.ts) on its
 * only manifest, and reads the image config the swapped-in base would lack; undefined for any other image
 * (multi-platform images are not encrypted for the pod model).
 */
export async function podModelFacts(source: BlobReader, manifests: ReturnType<typeof manifestsOf>): Promise<PodModelFacts | undefined> {
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
