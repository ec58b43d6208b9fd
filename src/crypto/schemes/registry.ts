import { KEYS_ANNOTATION_PREFIX } from '../layer-options.js';
import { jweScheme } from './jwe.js';
import type { KeyScheme } from './key-scheme.js';
import { vaultTransitScheme } from './vault-transit.js';

/**
 * The key schemes this build wraps and unwraps with: the one place a scheme is registered (ocicrypt's
 * `RegisterKeyWrapper`). Annotations of other schemes (pgp, pkcs7, another key provider) are kept and reported, not
 * unwrapped.
 */
export const KEY_SCHEMES: readonly KeyScheme[] = [jweScheme, vaultTransitScheme];

function schemeNamed(name: string): KeyScheme | undefined {
  return KEY_SCHEMES.find((s) => s.name === name);
}

/** `--recipient PREFIX:VALUE` → the scheme that takes it and the value; undefined when no scheme does. */
export function schemeForRecipient(spec: string): { scheme: KeyScheme; value: string } | undefined {
  for (const scheme of KEY_SCHEMES) {
    for (const prefix of scheme.recipientPrefixes) {
      if (spec.startsWith(`${prefix}:`)) return { scheme, value: spec.slice(prefix.length + 1) };
    }
  }
  return undefined;
}

/** One key-wrapping annotation of a layer: its scheme's name, the scheme when this build has it, and the value. */
export interface KeyAnnotation {
  name: string;
  scheme: KeyScheme | undefined;
  value: string;
}

/** Every key-wrapping annotation on a layer, in the layer's order. */
export function keyAnnotations(annotations: Readonly<Record<string, string>> | undefined): KeyAnnotation[] {
  const out: KeyAnnotation[] = [];
  for (const [k, value] of Object.entries(annotations ?? {})) {
    if (!k.startsWith(KEYS_ANNOTATION_PREFIX)) continue;
    const name = k.slice(KEYS_ANNOTATION_PREFIX.length);
    out.push({ name, scheme: schemeNamed(name), value });
  }
  return out;
}
