import jsonPatch, { type Operation } from 'fast-json-patch';
import type { JsonObject } from '../image/validate.js';

/** A JSON Patch (RFC 6902), as the API server applies a mutating webhook's answer. */
export type JsonPatch = Operation[];

/**
 * The JSON Patch that turns `original` into what `mutate` makes of a copy of it: mutations are plain edits of the
 * copy, and fast-json-patch's `compare` writes the operations (as pepr does), so no mutation has to know whether a
 * list it adds to exists yet, or what index an element moves to. The patch applies to `original`, the object the API
 * server sent and will patch. An element inserted before others in a list comes out as edits of the shifted elements
 * plus an `add` at the end; applied in order, that is the same list.
 */
export function patchFromMutation(original: JsonObject, mutate: (copy: JsonObject) => void): JsonPatch {
  const copy = structuredClone(original);
  mutate(copy);
  return jsonPatch.compare(original, copy);
}
