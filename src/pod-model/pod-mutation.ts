import { ImagegateError } from '../errors.js';
import type { JsonObject } from '../image/validate.js';
import { keyAccessCheckProblem } from './check-integrity.js';
import { sameVolume } from './container-equality.js';
import { TOKEN_VOLUME_NAME, isReservedContainer, tokenVolume, unpackContainer, type CheckContainerSettings } from './injected-containers.js';
import { patchFromMutation, type JsonPatch } from './json-patch.js';
import type { PodModelFacts } from './pod-image.js';
import { objectsOf, podTemplateOf, type ContainerList } from './workload.js';

/** What the mutating hook changes in a pod spec. */
export interface PodMutation {
  /** Containers whose image is replaced: pinned to the digest the policy judged. */
  images: Array<{ list: ContainerList; index: number; image: string }>;
  /** Node model: the key-access check (injected-containers.ts) and its token volume, to be the first init container. */
  check?: { container: JsonObject; volume: JsonObject };
  /** Pod model: the containers that run their plaintext base, with the encrypted layers unpacked by imagegate init. */
  plainBase?: { containers: PlainBaseContainer[]; settings: CheckContainerSettings };
}

/** One container of `containers` that runs a pod-model image. */
export interface PlainBaseContainer {
  index: number;
  name: string;
  /** The encrypted image, by digest: what its unpack container decrypts. */
  image: string;
  facts: PodModelFacts;
}

/**
 * The JSON Patch that makes the pod spec of `object` (a `kind` the webhook admits) what `mutation` says, for the API
 * server to apply to `object`: images first, then the check's placement, then the pod model's swap.
 */
export function podPatch(kind: string, object: JsonObject, mutation: PodMutation): JsonPatch {
  // The check removes reserved containers, which shifts the indices the pod model's swap goes by: one model per pod.
  if (mutation.check !== undefined && mutation.plainBase !== undefined) throw new Error('podPatch: a pod is mutated for the node model or the pod model, not both');
  return patchFromMutation(object, (copy) => {
    const spec = podTemplateOf(kind, copy)?.spec;
    if (spec === undefined) throw new ImagegateError('BAD_FORMAT', `this ${kind} has no pod spec to patch`);
    for (const { list, index, image } of mutation.images) containersIn(spec, list)[index]!.image = image;
    if (mutation.check !== undefined) placeKeyAccessCheck(spec, mutation.check.container, mutation.check.volume);
    if (mutation.plainBase !== undefined) runOnPlainBase(spec, mutation.plainBase.containers, mutation.plainBase.settings);
  });
}

/**
 * Makes `spec` run `expected` as its first init container, with `volume`; nothing changes when it already does (the
 * validating hook's comparison). Otherwise every reserved container is removed, whoever put it there (the pod's
 * author, or imagegate itself when it is re-invoked after another mutating webhook put an init container first), and
 * `expected` goes first; a missing or altered token volume is put right.
 */
function placeKeyAccessCheck(spec: JsonObject, expected: JsonObject, volume: JsonObject): void {
  if (keyAccessCheckProblem(spec, expected) !== undefined) {
    for (const list of ['containers', 'initContainers'] as const) {
      const items = spec[list];
      if (Array.isArray(items)) spec[list] = items.filter((c: unknown) => !(isObject(c) && isReservedContainer(c, String(expected.image))));
    }
    listIn(spec, 'initContainers').unshift(expected);
  }
  const volumes = listIn(spec, 'volumes');
  const at = volumes.findIndex((v) => isObject(v) && v.name === TOKEN_VOLUME_NAME);
  if (at < 0) volumes.push(volume);
  else if (!sameVolume(volumes[at] as JsonObject, volume)) volumes[at] = volume;
}

/**
 * Pod model for each container: the image becomes the plaintext base (by digest); an emptyDir per declared path is
 * mounted where the encrypted layers write, filled by an `imagegate init --unpack` container placed before the other
 * init containers; the image config's entrypoint, command, environment, working directory and user are copied where
 * the pod does not set them, since the base's own would apply otherwise.
 */
function runOnPlainBase(spec: JsonObject, containers: PlainBaseContainer[], settings: CheckContainerSettings): void {
  const volumes: JsonObject[] = [];
  const inits: JsonObject[] = [];
  for (const { index, name, image, facts } of containers) {
    const container = containersIn(spec, 'containers')[index]!;
    const volumeNames = facts.paths.map((_, i) => `imagegate-${index}-${i}`);
    container.image = facts.base;
    listIn(container, 'volumeMounts').push(...facts.paths.map((p, i) => ({ name: volumeNames[i]!, mountPath: `/${p}` })));
    const cfg = facts.config;
    if (container.command === undefined) {
      if (cfg.entrypoint !== undefined && cfg.entrypoint.length > 0) {
        container.command = [...cfg.entrypoint];
        if (container.args === undefined && cfg.cmd !== undefined) container.args = [...cfg.cmd];
      } else if (container.args === undefined && cfg.cmd !== undefined) {
        container.command = [...cfg.cmd];
      }
    }
    if (cfg.env !== undefined) {
      const set = new Set(objectsOf(container, 'env').map((e) => e.name));
      const extra = cfg.env.map((e) => ({ name: e.slice(0, e.indexOf('=')), value: e.slice(e.indexOf('=') + 1) })).filter((e) => e.name !== '' && !set.has(e.name));
      if (extra.length > 0) listIn(container, 'env').push(...extra);
    }
    if (container.workingDir === undefined && cfg.workingDir !== undefined) container.workingDir = cfg.workingDir;
    const uid = cfg.user !== undefined && /^\d+$/.test(cfg.user.split(':')[0]!) ? Number(cfg.user.split(':')[0]) : undefined;
    if (uid !== undefined) {
      const securityContext = (container.securityContext ??= {}) as JsonObject;
      if (securityContext.runAsUser === undefined) securityContext.runAsUser = uid;
    }
    volumes.push(...volumeNames.map((volume) => ({ name: volume, emptyDir: {} })));
    inits.push(unpackContainer(settings, name, image, facts.paths, volumeNames));
  }
  volumes.push(tokenVolume(settings));
  listIn(spec, 'volumes').push(...volumes);
  listIn(spec, 'initContainers').unshift(...inits);
}

/** The containers of one list of a pod spec, by index (the indices admission read from the same spec). */
function containersIn(spec: JsonObject, list: ContainerList): JsonObject[] {
  return spec[list] as JsonObject[];
}

/** The list `name` of `object`, created empty where it has none; only called to add to it. */
function listIn(object: JsonObject, name: string): unknown[] {
  if (!Array.isArray(object[name])) object[name] = [];
  return object[name] as unknown[];
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
