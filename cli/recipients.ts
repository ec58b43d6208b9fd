import { ImagegateError } from '../src/errors.js';
import { loadPrivateKey, type LoadedKey } from '../src/crypto/key-files.js';
import { prepareRecipients, providerRecipientUsages, recipientUsages } from '../src/crypto/recipients.js';
import type { LayerKeyWrapper } from '../src/crypto/schemes/key-scheme.js';
import { encryptionKeyring } from './keyring.js';

/**
 * Recipient schemes of ocicrypt (and the `x509:` people type for pkcs7) that imagegate does not wrap for. Naming one
 * is a key problem (exit 4, like an unusable key file), not a malformed flag: the user has a key, of a kind we
 * cannot use, and the remedy is another key.
 */
const UNSUPPORTED_SCHEMES: Record<string, string> = {
  provider: `the only key provider built in is imagegate: ${providerRecipientUsages()}`,
  pkcs7: 'pkcs7 (X.509 certificate) recipients are not supported; use jwe: with the certificate\'s public key (openssl x509 -pubkey -noout -in CERT > key.pub.pem)',
  x509: 'x509 is not a recipient scheme (ocicrypt takes certificates as pkcs7:, which imagegate does not support); use jwe: with the certificate\'s public key (openssl x509 -pubkey -noout -in CERT > key.pub.pem)',
  pgp: 'pgp recipients are not supported; use a jwe: public key (imagegate keygen --out NAME makes one)',
  pkcs11: 'pkcs11 recipients are not supported; use a jwe: public key exported from the token',
};

/**
 * `--recipient SCHEME:VALUE`, each scheme's recipients ready to wrap. `binding` is the repository the image is pushed
 * to, which schemes that bind wrapped keys (Vault) bind them to.
 */
export async function loadRecipients(specs: readonly string[], binding?: string): Promise<LayerKeyWrapper[]> {
  return prepareRecipients(specs, { binding, keyring: encryptionKeyring() }, refuseRecipient);
}

function refuseRecipient(spec: string): never {
  const colon = spec.indexOf(':');
  const scheme = colon < 0 ? '' : spec.slice(0, colon);
  const value = colon < 0 ? '' : spec.slice(colon + 1);
  if (scheme === '' || value === '') {
    throw new ImagegateError('USAGE', `--recipient ${JSON.stringify(spec)} must be SCHEME:VALUE, e.g. jwe:./public.pem or vault:transit/app`);
  }
  const unsupported = UNSUPPORTED_SCHEMES[scheme];
  if (unsupported !== undefined) throw new ImagegateError('BAD_KEY', `--recipient ${spec}: ${unsupported}`);
  // Not a scheme at all: a typo in the flag (`jew:`), so a usage error.
  throw new ImagegateError('USAGE', `--recipient ${spec}: unknown scheme ${JSON.stringify(scheme)}; use ${recipientUsages()}`);
}

/** `--key FILE`: private keys tried on every wrapped layer key. */
export async function loadKeys(files: readonly string[]): Promise<LoadedKey[]> {
  return Promise.all(files.map((f) => loadPrivateKey(f)));
}
