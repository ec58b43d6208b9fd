import { ImagegateError } from '../errors.js';
import type { LayerKeyWrapper, RecipientContext } from './schemes/key-scheme.js';
import { KEY_SCHEMES, schemeForRecipient } from './schemes/registry.js';

/**
 * `--recipient SCHEME:VALUE` (the form skopeo's --encryption-key and ctr-enc's --recipient take), each given to the
 * scheme that takes its prefix, all of one scheme at once (jwe wraps once for all its recipients). `unknown` is
 * called with a spec no scheme takes, and must throw: the CLI knows which of ocicrypt's other schemes it was.
 */
export async function prepareRecipients(
  specs: readonly string[],
  context: RecipientContext,
  unknown: (spec: string) => never = (spec) => {
    throw new ImagegateError('USAGE', `--recipient ${spec}: no scheme takes it; use ${recipientUsages()}`);
  },
): Promise<LayerKeyWrapper[]> {
  const byScheme = new Map<(typeof KEY_SCHEMES)[number], string[]>();
  for (const spec of specs) {
    const found = schemeForRecipient(spec);
    if (found === undefined || found.value === '') unknown(spec);
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
export function recipientUsages(): string {
  return KEY_SCHEMES.map((s) => s.recipientUsage).join(' or ');
}

/** The key providers this build has, with their recipients: `NAME (provider:NAME:KEY, the same as …)`. */
export function providerRecipientUsages(): string {
  return KEY_SCHEMES.flatMap((s) => (s.provider !== undefined ? [`${s.provider.name} (${s.provider.recipientUsage}, the same as ${s.recipientUsage})`] : [])).join(', ');
}
