import { ImagegateError } from '../src/errors.js';
import { loadPrivateKey, loadPublicKey, type LoadedKey } from '../src/crypto/key-files.js';
import { keyWrapper } from '../src/crypto/wrappers/registry.js';
import type { RecipientGroup } from '../src/ops/encrypt.js';
import { VAULT_PROVIDER_NAME } from '../src/crypto/wrappers/vault.js';
import { parseTransitKeyRef, type TransitKeyRef } from '../src/vault/transit.js';
import { vaultLayerKeysFromEnv } from './vault.js';

/**
 * Recipient schemes of ocicrypt (and the `x509:` people type for pkcs7) that imagegate does not wrap for. Naming one
 * is a key problem (exit 4, like an unusable key file), not a malformed flag: the user has a key, of a kind we
 * cannot use, and the remedy is another key.
 */
const UNSUPPORTED_SCHEMES: Record<string, string> = {
  provider: 'the only key provider built in is imagegate (provider:imagegate:[MOUNT/]KEY, the same as vault:[MOUNT/]KEY)',
  pkcs7: 'pkcs7 (X.509 certificate) recipients are not supported; use jwe: with the certificate\'s public key (openssl x509 -pubkey -noout -in CERT > key.pub.pem)',
  x509: 'x509 is not a recipient scheme (ocicrypt takes certificates as pkcs7:, which imagegate does not support); use jwe: with the certificate\'s public key (openssl x509 -pubkey -noout -in CERT > key.pub.pem)',
  pgp: 'pgp recipients are not supported; use a jwe: public key (imagegate keygen --out NAME makes one)',
  pkcs11: 'pkcs11 recipients are not supported; use a jwe: public key exported from the token',
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
      const unsupported = UNSUPPORTED_SCHEMES[scheme];
      if (unsupported !== undefined) throw new ImagegateError('BAD_KEY', `--recipient ${spec}: ${unsupported}`);
      // Not a scheme at all: a typo in the flag (`jew:`), so a usage error.
      throw new ImagegateError('USAGE', `--recipient ${spec}: unknown scheme ${JSON.stringify(scheme)}; use jwe:PUBLIC_KEY or vault:[MOUNT/]KEY`);
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
