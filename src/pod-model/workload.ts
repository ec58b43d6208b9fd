import type { JsonObject } from '../image/validate.js';

/** Container lists of a pod spec that run images. */
const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;
export type ContainerList = (typeof CONTAINER_LISTS)[number];

interface PodContainer {
  list: ContainerList;
  index: number;
  name: string;
  image: string;
}

/** Where the pod template of a workload lives, as a JSON pointer, and what is in it. */
export interface PodTemplate {
  /** JSON pointer of the pod spec, e.g. `/spec/template/spec`. */
  specPath: string;
  spec: JsonObject;
  serviceAccount: string;
  imagePullSecrets: string[];
  containers: PodContainer[];
}

/** Pod-spec locations for the kinds the webhook admits (Pods, and workloads for early feedback). */
const SPEC_PATHS: Record<string, string[]> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

export function isAdmittedKind(kind: string): boolean {
  return kind in SPEC_PATHS;
}

/** The pod template of `object` (of `kind`), or undefined when the object has none (e.g. a DELETE). */
export function podTemplateOf(kind: string, object: JsonObject | undefined): PodTemplate | undefined {
  const path = SPEC_PATHS[kind];
  if (path === undefined || object === undefined) return undefined;
  let node: unknown = object;
  for (const key of path) {
    node = typeof node === 'object' && node !== null ? (node as JsonObject)[key] : undefined;
  }
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
  const spec = node as JsonObject;
  const containers: PodContainer[] = [];
  for (const list of CONTAINER_LISTS) {
    const items = spec[list];
    if (!Array.isArray(items)) continue;
    items.forEach((c: unknown, index) => {
      const o = (typeof c === 'object' && c !== null ? c : {}) as JsonObject;
      containers.push({ list, index, name: typeof o.name === 'string' ? o.name : `${list}[${index}]`, image: typeof o.image === 'string' ? o.image : '' });
    });
  }
  const pullSecrets = Array.isArray(spec.imagePullSecrets)
    ? spec.imagePullSecrets.map((s: unknown) => (typeof s === 'object' && s !== null ? (s as JsonObject).name : undefined)).filter((n): n is string => typeof n === 'string')
    : [];
  const serviceAccount = typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '' ? spec.serviceAccountName : 'default';
  return { specPath: `/${path.join('/')}`, spec, serviceAccount, imagePullSecrets: pullSecrets, containers };
}

/** The objects in one of a pod spec's lists (containers, volumes); a missing list is empty. */
export function objectsOf(spec: JsonObject, list: string): JsonObject[] {
  const items = spec[list];
  return Array.isArray(items) ? items.filter((x): x is JsonObject => typeof x === 'object' && x !== null && !Array.isArray(x)) : [];
}
