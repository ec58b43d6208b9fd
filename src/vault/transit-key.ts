import { ImagegateError } from '../errors.js';

/**
 * A Transit key: `transit/keys/app` is `{ mount: 'transit', name: 'app' }`. Written one way everywhere imagegate
 * shows or compares one (annotations, inspect, audit, policy, errors): `MOUNT/keys/NAME`, the path Vault itself uses.
 */
export interface TransitKey {
  mount: string;
  name: string;
}

const DEFAULT_TRANSIT_MOUNT = 'transit';
// Vault paths are not URL-encoded by node-vault; keep names to characters that need no encoding.
const PATH_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Whether `segment` may be one segment of a Vault path (a mount, a key or role name) as imagegate writes paths. */
export function isVaultPathSegment(segment: string): boolean {
  return PATH_SEGMENT.test(segment);
}
const LONG_FORM = /^(.+)\/keys\/([^/]+)$/;

/**
 * Reads a Transit key as imagegate writes it (`MOUNT/keys/NAME`) or in the short form `--recipient vault:` takes
 * (`[MOUNT/]NAME`, mount `transit` when omitted). Undefined when `text` is neither.
 */
export function readTransitKey(text: string): TransitKey | undefined {
  const long = LONG_FORM.exec(text);
  let mount: string;
  let name: string;
  if (long !== null) {
    mount = long[1]!;
    name = long[2]!;
  } else {
    const parts = text.split('/');
    name = parts.pop() ?? '';
    mount = parts.length > 0 ? parts.join('/') : DEFAULT_TRANSIT_MOUNT;
  }
  if (!isVaultPathSegment(name) || !mount.split('/').every(isVaultPathSegment)) return undefined;
  return { mount, name };
}

/** `readTransitKey` for a value the user typed: a usage error that shows both forms when it is neither. */
export function parseTransitKey(text: string): TransitKey {
  const key = readTransitKey(text);
  if (key === undefined) {
    throw new ImagegateError(
      'USAGE',
      `${JSON.stringify(text)} is not a Transit key: write MOUNT/keys/NAME or [MOUNT/]NAME with letters, digits, ".", "_" and "-", e.g. transit/keys/app-layers or transit/app-layers`,
    );
  }
  return key;
}

/** `MOUNT/keys/NAME`: the one spelling imagegate shows and compares. */
export function formatTransitKey(key: TransitKey): string {
  return `${key.mount}/keys/${key.name}`;
}

/** `MOUNT/NAME`, as `--recipient vault:` takes it, for remedies the user copies into a command. */
export function recipientFormOf(key: TransitKey): string {
  return `${key.mount}/${key.name}`;
}
