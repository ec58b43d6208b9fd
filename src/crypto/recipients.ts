import { ImagegateError } from '../errors.js';
import type { LayerKeyWrapper, RecipientContext } from './schemes/key-scheme.js';
import { KEY_SCHEMES, schemeForRecipient } from './schemes/registry.js';

/**
 * `--recipient SCHEME:VALUE` (the form skopeo's --encryption-key and ctr-enc's --recipient take), each given to the
 * scheme that takes its prefix, all of one scheme at once (jwe wraps once for all its recipients). A spec no scheme
 * takes is refused, saying which of ocicrypt's other schemes it was.
 */
export async function prepareRecipients(specs: readonly string[], context: RecipientContext): Promise<LayerKeyWrapper[]> {
  const byScheme = new Map<(typeof KEY_SCHEMES)[number], string[]>();
  for (const spec of specs) {
    const found = schemeForRecipient(spec);
    if (found === undefined || found.value === '') refuseRecipient(spec);
    const values = byScheme.get(found.scheme) ?? [];
    values.push(found.value);
    byScheme.set(found.scheme, values);
  }
  // In registration order, so the annotations of an image come out the same whatever order the flags were in.
  const wrappers: LayerKeyWrapper[] = [];
  for (const scheme of KEY_SCHEMES) {
    const values = byScheme.get(scheme);
    if (values !== undefined) wrappers.push(await scheme.recipients(values, context));
  }
  return wrappers;
}

/** `jwe:PUBLIC_KEY or vault:[MOUNT/]KEY`, for messages and help. */
function recipientUsages(): string {
  return KEY_SCHEMES.map((s) => s.recipientUsage).join(' or ');
}

/** The key providers this build has, with their recipients: `NAME (provider:NAME:KEY, the same as …)`. */
function providerRecipientUsages(): string {
  return KEY_SCHEMES.flatMap((s) => (s.provider !== undefined ? [`${s.provider.name} (${s.provider.recipientUsage}, the same as ${s.recipientUsage})`] : [])).join(', ');
}

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
