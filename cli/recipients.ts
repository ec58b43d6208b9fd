import { ImagegateError } from '../src/errors.js';
import { loadPrivateKey, loadPublicKey, type LoadedKey } from '../src/crypto/key-files.js';
import { keyWrapper } from '../src/crypto/wrappers/registry.js';
import type { RecipientGroup } from '../src/ops/encrypt.js';

const PLANNED_SCHEMES: Record<string, string> = {
  vault: 'Vault Transit recipients arrive with the Vault integration',
  provider: 'key-provider recipients arrive with the Vault integration',
  pkcs7: 'pkcs7 recipients are not supported; use jwe',
  pgp: 'pgp recipients are not supported; use jwe',
  pkcs11: 'pkcs11 recipients are not supported; use jwe',
};

/** `--recipient SCHEME:VALUE` (the form skopeo's --encryption-key and ctr-enc's --recipient take). */
export async function loadRecipients(specs: readonly string[]): Promise<RecipientGroup[]> {
  const groups = new Map<string, LoadedKey[]>();
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    const scheme = colon < 0 ? '' : spec.slice(0, colon);
    const value = colon < 0 ? '' : spec.slice(colon + 1);
    if (scheme === '' || value === '') {
      throw new ImagegateError('USAGE', `--recipient ${JSON.stringify(spec)} must be SCHEME:VALUE, e.g. jwe:./public.pem`);
    }
    if (keyWrapper(scheme) === undefined) {
      const why = PLANNED_SCHEMES[scheme] ?? `unknown scheme ${JSON.stringify(scheme)}; use jwe:PUBLIC_KEY`;
      throw new ImagegateError('UNSUPPORTED', `--recipient ${spec}: ${why}`);
    }
    const list = groups.get(scheme) ?? [];
    list.push(await loadPublicKey(value));
    groups.set(scheme, list);
  }
  return [...groups].map(([scheme, recipients]) => ({ wrapper: keyWrapper(scheme)!, recipients }));
}

/** `--key FILE`: private keys tried on every wrapped layer key. */
export async function loadKeys(files: readonly string[]): Promise<LoadedKey[]> {
  return Promise.all(files.map((f) => loadPrivateKey(f)));
}
