import type { KeyWrapper } from '../key-wrapper.js';
import { KEYS_ANNOTATION_PREFIX } from '../layer-options.js';
import { JweKeyWrapper } from './jwe.js';

/** The schemes this build can wrap and unwrap with, by scheme name. */
export const KEY_WRAPPERS: ReadonlyMap<string, KeyWrapper> = new Map([['jwe', new JweKeyWrapper() as KeyWrapper]]);

export function keyWrapper(scheme: string): KeyWrapper | undefined {
  return KEY_WRAPPERS.get(scheme);
}

/** `org.opencontainers.image.enc.keys.provider.vault` → `provider.vault`; undefined for other annotations. */
export function schemeOfAnnotation(annotation: string): string | undefined {
  return annotation.startsWith(KEYS_ANNOTATION_PREFIX) ? annotation.slice(KEYS_ANNOTATION_PREFIX.length) : undefined;
}

/** Every key-wrapping annotation on a layer, as [scheme, value] pairs. */
export function keyAnnotations(annotations: Record<string, string> | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(annotations ?? {})) {
    const scheme = schemeOfAnnotation(k);
    if (scheme !== undefined) out.push([scheme, v]);
  }
  return out;
}
