import { ImagegateError } from '../src/errors.js';
import { loadPrivateKey, loadPublicKey, type LoadedKey } from '../src/crypto/key-files.js';
import { keyWrapper } from '../src/crypto/wrappers/registry.js';
import type { RecipientGroup } from '../src/ops/encrypt.js';
import { VAULT_PROVIDER_NAME } from '../src/crypto/wrappers/vault.js';
import { parseTransitKeyRef, type TransitKeyRef } from '../src/vault/transit.js';
import { vaultLayerKeysFromEnv } from './vault.js';

const PLANNED_SCHEMES: Record<string, string> = {
  provider: 'the only key provider built in is imagegate (provider:imagegate:[MOUNT/]KEY, the same as vault:[MOUNT/]KEY)',
  pkcs7: 'pkcs7 recipients are not supported; use jwe',
  pgp: 'pgp recipients are not supported; use jwe',
  pkcs11: 'pkcs11 recipients are not supported; use jwe',
};

const PROVIDER_PREFIX = `provider:${VAULT_PROVIDER_NAME}:`;

/**
 * `--recipient SCHEME:VALUE` (the form skopeo's --encryption-key and ctr-enc's --recipient take). `vault:[MOUNT/]KEY`
 * (or `provider:imagegate:[MOUNT/]KEY`) wraps with a Vault Transit key bound to `binding`, the destination repository.
 */
export async function loadRecipients(specs: readonly string[], binding?: string): Promise<RecipientGroup[]> {
  const groups = new Map<string, LoadedKey[]>();
  const transitKeys: TransitKeyRef[] = [];
  for (const spec of specs) {
    const normalized = spec.startsWith(PROVIDER_PREFIX) ? `vault:${spec.slice(PROVIDER_PREFIX.length)}` : spec;
    const colon = normalized.indexOf(':');
    const scheme = colon < 0 ? '' : normalized.slice(0, colon);
    const value = colon < 0 ? '' : normalized.slice(colon + 1);
    if (scheme === '' || value === '') {
      throw new ImagegateError('USAGE', `--recipient ${JSON.stringify(spec)} must be SCHEME:VALUE, e.g. jwe:./public.pem or vault:transit/app`);
    }
    if (scheme === 'vault') {
      transitKeys.push(parseTransitKeyRef(value));
      continue;
    }
    if (keyWrapper(scheme) === undefined) {
      const why = PLANNED_SCHEMES[scheme] ?? `unknown scheme ${JSON.stringify(scheme)}; use jwe:PUBLIC_KEY`;
      throw new ImagegateError('UNSUPPORTED', `--recipient ${spec}: ${why}`);
    }
    const list = groups.get(scheme) ?? [];
    list.push(await loadPublicKey(value));
    groups.set(scheme, list);
  }
  const out: RecipientGroup[] = [...groups].map(([scheme, recipients]) => ({ wrapper: keyWrapper(scheme)!, recipients }));
  if (transitKeys.length > 0) {
    if (binding === undefined) {
      throw new ImagegateError(
        'USAGE',
        'vault: recipients bind each layer key to the repository it is pushed to; push to docker://HOST/REPO, or name the repository with --bind HOST/REPO',
      );
    }
    out.push({ vault: await vaultLayerKeysFromEnv(), keys: transitKeys, binding });
  }
  return out;
}

/** `--key FILE`: private keys tried on every wrapped layer key. */
export async function loadKeys(files: readonly string[]): Promise<LoadedKey[]> {
  return Promise.all(files.map((f) => loadPrivateKey(f)));
}
