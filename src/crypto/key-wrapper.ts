import type { LoadedKey } from './key-files.js';

/**
 * One key-wrapping scheme of ocicrypt (jwe, pkcs7, pgp, provider.NAME). A scheme wraps a layer's private options
 * for all its recipients at once and owns one annotation; the layer cipher knows nothing of schemes, and adding
 * a scheme never touches the cipher.
 */
export interface KeyWrapper {
  /** Scheme name as ocicrypt and `inspect` show it, e.g. `jwe`. */
  readonly scheme: string;
  /** The layer annotation this scheme writes, e.g. `org.opencontainers.image.enc.keys.jwe`. */
  readonly annotation: string;
  /** Wraps `privateOptions` for every recipient into one item. */
  wrap(privateOptions: Buffer, recipients: readonly LoadedKey[]): Promise<Buffer>;
  /** Tries `keys` on one wrapped item; undefined when none of them is a recipient. */
  unwrap(item: Buffer, keys: readonly LoadedKey[]): Promise<Buffer | undefined>;
  /** What can be told about an item's recipients without any key (algorithms, key ids). */
  describe(item: Buffer): RecipientSummary[];
}

export interface RecipientSummary {
  /** Key-wrapping algorithm, e.g. `RSA-OAEP`, `ECDH-ES+A256KW`. */
  algorithm: string;
  /** Extra identifying detail that is safe to show: the curve, a key id. */
  detail?: string;
}

/**
 * An annotation's value is a comma-separated list of standard-base64 items (ocicrypt appends one per wrapping
 * run). Items that are not base64 are reported, not silently skipped.
 */
export function splitAnnotationItems(value: string): Array<Buffer | Error> {
  return value
    .split(',')
    .filter((s) => s !== '')
    .map((s) => (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 ? Buffer.from(s, 'base64') : new Error('could not base64 decode the annotation')));
}

export function joinAnnotationItems(existing: string | undefined, item: Buffer): string {
  const encoded = item.toString('base64');
  return existing === undefined || existing === '' ? encoded : `${existing},${encoded}`;
}
