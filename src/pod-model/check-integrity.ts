import type { JsonObject } from '../image/validate.js';
import { containerDifferences, sameVolume } from './container-equality.js';
import { CHECK_CONTAINER_NAME, TOKEN_VOLUME_NAME, isReservedContainer } from './injected-containers.js';
import { objectsOf } from './workload.js';

/**
 * Why `spec` does not run the check exactly as injected, or undefined when it does: `expected` must be the first init
 * container, equal field by field apart from what the API server adds (container-equality.ts), no other container may
 * take a reserved name, and the token volume must be `volume`.
 */
export function checkIsIntact(spec: JsonObject, expected: JsonObject, volume: JsonObject): string | undefined {
  const problem = keyAccessCheckProblem(spec, expected);
  if (problem !== undefined) return problem;
  const found = objectsOf(spec, 'volumes').find((v) => v.name === TOKEN_VOLUME_NAME);
  if (found === undefined) return `the ${TOKEN_VOLUME_NAME} volume is missing`;
  return sameVolume(found, volume) ? undefined : `the ${TOKEN_VOLUME_NAME} volume was altered`;
}

/** Why the check container in `spec` is not `expected`, first and alone under a reserved name; undefined when it is. */
export function keyAccessCheckProblem(spec: JsonObject, expected: JsonObject): string | undefined {
  const inits = objectsOf(spec, 'initContainers');
  const at = inits.findIndex((c) => c.name === CHECK_CONTAINER_NAME);
  if (at < 0) return `the ${CHECK_CONTAINER_NAME} init container is missing`;
  if (at > 0) {
    // Only a webhook that ran after imagegate's mutating hook puts a container there; naming it names the webhook.
    const before = inits.slice(0, at).map((c) => `${String(c.name)} (image ${String(c.image)})`);
    const which = before.length === 1 ? `init container ${before[0]} was` : `init containers ${before.join(', ')} were`;
    return `the ${CHECK_CONTAINER_NAME} init container is not first: ${which} placed before it, most likely by a mutating webhook that ran after imagegate's`;
  }
  const altered = containerDifferences(inits[0]!, expected, objectsOf(spec, 'volumes'));
  if (altered.length > 0) return `the ${CHECK_CONTAINER_NAME} init container was altered (${altered.join(', ')})`;
  const checkImage = String(expected.image);
  const stray = [...objectsOf(spec, 'initContainers').slice(1), ...objectsOf(spec, 'containers')].find((c) => isReservedContainer(c, checkImage));
  if (stray !== undefined) return `container ${String(stray.name)} runs imagegate's image under a name reserved for the containers imagegate injects, and imagegate did not inject it`;
  return undefined;
}
