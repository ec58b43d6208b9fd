import { ImagegateError } from '../errors.js';
import { canonicalRepositoryGlob, canonicalRepositoryName } from '../image/reference.js';
import { matchesAnyGlob } from '../util/glob.js';

/**
 * `allowedBindings`: the repositories whose layer keys one node pool's key provider may unwrap. In the node model
 * the node's Vault identity can decrypt every image wrapped with its keys, so a pool that runs only one team's
 * workloads can be limited to that team's repositories: a wrapped key bound anywhere else is refused before Vault
 * is asked. The binding is what Vault's derived-key context enforces, so it cannot be edited to slip through.
 *
 * Globs are as in the admission policy (`*` within a path segment, `**` across segments) and must start with the
 * registry host written out. Both sides are compared in canonical form (host lower-cased, default port dropped,
 * Docker Hub's aliases and `library/` folded), so `Registry.Example:443/team/app` is `registry.example/team/app`.
 */
export function canonicalBindingGlob(glob: string, where: string): string {
  const bad = (why: string): ImagegateError => new ImagegateError('BAD_FORMAT', `${where} ${JSON.stringify(glob)} ${why}`);
  const slash = glob.indexOf('/');
  if (slash <= 0 || slash === glob.length - 1) throw bad('is not HOST/PATH: write a repository glob such as registry.example/team/**');
  const host = glob.slice(0, slash);
  // Docker's own rule for what is a registry host; without one, "team/**" would silently mean Docker Hub.
  if (!(host.includes('.') || host.includes(':') || host.toLowerCase() === 'localhost')) {
    throw bad(`does not start with a registry host; write it out, e.g. docker.io/${glob} or registry.example/${glob}`);
  }
  if (host.includes('*')) throw bad('has a wildcard in the registry host; write the host out (one glob per registry)');
  return canonicalRepositoryGlob(glob);
}

/** Refuses to unwrap a key bound outside `allowed` (canonical globs); `binding` is the item's, as wrapped. */
export function assertBindingAllowed(binding: string, allowed: readonly string[], label: string): void {
  let canonical: string;
  try {
    canonical = canonicalRepositoryName(binding);
  } catch {
    canonical = '';
  }
  if (canonical !== '' && matchesAnyGlob(canonical, allowed)) return;
  const globs = allowed.length > 0 ? allowed.join(', ') : 'none';
  const shown = canonical !== '' ? canonical : JSON.stringify(binding);
  const remedy = 'Run the workload on a node pool whose key provider allows that repository, or add a glob that matches it to allowedBindings in the key-provider config';
  throw new ImagegateError('AUTH', `${label}: the layer key is bound to repository ${shown}, which this key provider may not unwrap: it is outside allowedBindings in its configuration (${globs}). ${remedy}`);
}
