import { ImagegateError, isImagegateError } from '../../errors.js';
import type { VaultSession } from '../vault-session.js';

/**
 * Before the first write of a setup run: asks Vault (`sys/capabilities-self`, which the default policy grants every
 * token) whether this token may write every path a plan writes. Without this a token that may, say, write policies
 * but not roles gets halfway, and leaves mounts, keys and policies behind that nothing uses yet.
 *
 * What it cannot see is refused by Vault at the write itself: what Vault checks on its side of the network (an OIDC
 * discovery or JWKS URL it must fetch). The document's own rules, including where Kubernetes auth gets its CA, are
 * checked when the document is read, before Vault is contacted at all.
 */
export async function checkWritable(session: VaultSession, writePaths: string[]): Promise<void> {
  const paths = [...new Set(writePaths)];
  if (paths.length === 0) return;
  let answer: Record<string, unknown> & { data?: Record<string, unknown> };
  try {
    answer = await session.write('sys/capabilities-self', { paths }, 'check which paths this token may write');
  } catch (e) {
    // A token without the default policy cannot ask; the writes then report their own denial, as before.
    if (isImagegateError(e, 'AUTH')) return;
    throw e;
  }
  const table = answer.data ?? answer;
  const refused = paths.flatMap((path) => {
    const has = capabilitiesOf(table[path]);
    const problem = missingCapability(path, has);
    return problem === undefined ? [] : [`${path} (${problem}; the token has ${has.length > 0 ? has.join(', ') : 'none'})`];
  });
  if (refused.length > 0) {
    throw new ImagegateError(
      'AUTH',
      `vault setup: nothing was changed, because this token may not write ${refused.length} of the ${paths.length} path(s) the plan writes: ${refused.join('; ')}. ` +
        'Run it with a root token, or with one holding deploy/vault/imagegate-setup-admin.hcl (with its transit/ paths changed if transit.mount is elsewhere)',
    );
  }
}

function capabilitiesOf(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** What `has` lacks to POST to `path`, or undefined. Enabling an auth method (sys/auth/M) also needs sudo. */
function missingCapability(path: string, has: string[]): string | undefined {
  if (has.includes('root')) return undefined;
  if (has.includes('deny')) return 'denied';
  const writes = has.includes('create') || has.includes('update');
  const sudo = !path.startsWith('sys/auth/') || has.includes('sudo');
  if (writes && sudo) return undefined;
  if (!sudo && writes) return 'needs sudo';
  return path.startsWith('sys/auth/') ? 'needs create or update, and sudo' : 'needs create or update';
}
