import { ImagegateError } from '../../errors.js';
import { versionOf } from '../../vault/transit.js';
import { formatTransitKey } from '../../vault/transit-key.js';
import type { RecipientSummary, WrappedKeyReference } from './key-scheme.js';

/** How messages name the scheme these items belong to (the annotation's scheme, `provider.imagegate`). */
const ITEM_NAME = 'Vault-wrapped key';

/**
 * What one wrapped item holds (JSON, versioned). `binding` names the repository the key was wrapped for; it is
 * the Transit `context` of a derived key, so the same item copied into another repository does not unwrap there.
 */
export interface VaultWrappedKey {
  v: 1;
  mount: string;
  key: string;
  version: number;
  ciphertext: string;
  binding: string;
}

const MAX_ITEM_BYTES = 16 * 1024;

export function encodeVaultItem(w: VaultWrappedKey): Buffer {
  return Buffer.from(JSON.stringify({ v: w.v, mount: w.mount, key: w.key, version: w.version, ciphertext: w.ciphertext, binding: w.binding }));
}

/**
 * Reads a wrapped item. Its `version` field is only a label: the key version is the one in the Transit ciphertext
 * (`vault:vN:`), which Vault vouches for when it unwraps. An item whose label disagrees was edited after wrapping
 * (to pass a policy's minVersion, say) and is refused.
 */
export function decodeVaultItem(item: Buffer, where: string): VaultWrappedKey {
  const { wrapped, labelledVersion } = parseVaultItem(item, where);
  if (labelledVersion !== undefined) throw new ImagegateError('INTEGRITY', tamperedVersionMessage(where, labelledVersion, wrapped.version));
  return wrapped;
}

function tamperedVersionMessage(where: string, labelled: number, actual: number): string {
  return (
    `${where}: the ${ITEM_NAME} says key version ${labelled}, but its Transit ciphertext is version ${actual}; ` +
    `the annotation was edited after wrapping. Do not use this image: re-fetch it from its publisher, or have them re-encrypt or rewrap it`
  );
}

/** The item, and the version its JSON claims when that differs from the ciphertext's. */
function parseVaultItem(item: Buffer, where: string): { wrapped: VaultWrappedKey; labelledVersion?: number } {
  const bad = (why: string): ImagegateError => new ImagegateError('BAD_FORMAT', `${where}: the ${ITEM_NAME} ${why}`);
  if (item.length > MAX_ITEM_BYTES) throw bad(`is ${item.length} bytes, more than any imagegate writes`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(item.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('is not JSON');
  }
  if (json.v !== 1) throw bad(`has format version ${JSON.stringify(json.v)}; this imagegate reads version 1, upgrade it`);
  for (const field of ['mount', 'key', 'ciphertext', 'binding'] as const) {
    if (typeof json[field] !== 'string' || json[field] === '') throw bad(`has no "${field}"`);
  }
  const ciphertext = json.ciphertext as string;
  const version = versionOf(ciphertext);
  if (version < 1) throw bad('holds no Vault ciphertext (vault:vN:…)');
  const wrapped: VaultWrappedKey = { v: 1, mount: json.mount as string, key: json.key as string, version, ciphertext, binding: json.binding as string };
  const labelled = json.version;
  if (labelled !== undefined && labelled !== version) {
    return { wrapped, labelledVersion: typeof labelled === 'number' ? labelled : Number.NaN };
  }
  return { wrapped };
}

/** The Transit `context` that binds a wrapped key to a repository. */
export function bindingContext(binding: string): Buffer {
  return Buffer.from(`imagegate:v1:${binding}`);
}

/** What the item names, without any key: the Transit key, the version its ciphertext is at, the repository. */
export function referenceOf(item: Buffer, where: string): WrappedKeyReference {
  const { wrapped, labelledVersion } = parseVaultItem(item, where);
  return { ...referenceOfWrapped(wrapped), ...(labelledVersion !== undefined ? { tampered: true as const } : {}) };
}

export function referenceOfWrapped(w: VaultWrappedKey): WrappedKeyReference {
  return { key: formatTransitKey({ mount: w.mount, name: w.key }), version: w.version, binding: w.binding };
}

/** Safe to show without any key: which Transit key, which version (the ciphertext's), which repository. */
export function describeVaultItem(item: Buffer): RecipientSummary[] {
  const { wrapped: w, labelledVersion } = parseVaultItem(item, 'layer');
  const tampered = labelledVersion !== undefined ? ` (TAMPERED: its label says v${labelledVersion})` : '';
  return [{ algorithm: 'vault-transit', detail: `${formatTransitKey({ mount: w.mount, name: w.key })} v${w.version} bound to ${w.binding}${tampered}` }];
}
