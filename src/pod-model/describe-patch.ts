import jsonPatch from 'fast-json-patch';
import type { JsonObject } from '../image/validate.js';
import type { JsonPatch } from './json-patch.js';
import { objectsOf, podTemplateOf } from './workload.js';

/**
 * What a mutating webhook's patch does to a workload's pod spec, in words: containers whose image changed (pinned,
 * or swapped to a pod-model base), containers and volumes added or removed. Read from the patched object compared
 * with the original, not from the operations, whose shape depends on how the patch was computed (a container
 * inserted first may come out as edits of the ones after it).
 */
export function describePodPatch(kind: string, object: JsonObject, patch: JsonPatch): string[] {
  const before = podTemplateOf(kind, object);
  const patched = jsonPatch.applyPatch(structuredClone(object), patch, false, false).newDocument as JsonObject;
  const after = podTemplateOf(kind, patched);
  if (before === undefined || after === undefined) return patch.map((op) => `${op.op} ${op.path}`);
  const out: string[] = [];
  const key = (list: string, name: string): string => `${list}/${name}`;
  const was = new Map(before.containers.map((c) => [key(c.list, c.name), c]));
  const now = new Map(after.containers.map((c) => [key(c.list, c.name), c]));
  for (const [k, c] of now) {
    const old = was.get(k);
    if (old === undefined) out.push(`adds ${c.list} ${c.name} (${c.image})`);
    else if (old.image !== c.image) out.push(`pins ${c.list} ${c.name}: ${c.image}`);
  }
  for (const [k, c] of was) if (!now.has(k)) out.push(`removes ${c.list} ${c.name}`);
  const volumeNames = (spec: JsonObject): string[] => objectsOf(spec, 'volumes').map((v) => String(v.name));
  const oldVolumes = new Set(volumeNames(before.spec));
  for (const name of volumeNames(after.spec)) if (!oldVolumes.has(name)) out.push(`adds volume ${name}`);
  return out;
}
