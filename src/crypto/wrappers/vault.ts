import { ImagegateError } from '../../errors.js';
import { canonicalBindingName } from '../../image/reference.js';
import { Coalescer } from '../../util/coalesce.js';
import { DerivedKeysOnly } from '../../vault/derived-key.js';
import { formatTransitKeyRef, versionOf, type Transit, type TransitKeyRef, type WrappedByTransit } from '../../vault/transit.js';
import { splitAnnotationItems, type RecipientSummary } from '../key-wrapper.js';
import { KEYS_ANNOTATION_PREFIX } from '../layer-options.js';

/**
 * Layer keys wrapped by a Vault Transit key. The annotation is the one ocicrypt gives the key provider named
 * `imagegate` (`provider.imagegate`), so runtimes that call `imagegate keyprovider` decrypt these images, and
 * imagegate itself unwraps them by calling Vault directly.
 */
export const VAULT_PROVIDER_NAME = 'imagegate';
export const VAULT_SCHEME = `provider.${VAULT_PROVIDER_NAME}`;
export const VAULT_ANNOTATION = `${KEYS_ANNOTATION_PREFIX}${VAULT_SCHEME}`;

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
    `${where}: the ${VAULT_SCHEME} wrapped key says key version ${labelled}, but its Transit ciphertext is version ${actual}; ` +
    `the annotation was edited after wrapping. Do not use this image: re-fetch it from its publisher, or have them re-encrypt or rewrap it`
  );
}

/** The item, and the version its JSON claims when that differs from the ciphertext's. */
function parseVaultItem(item: Buffer, where: string): { wrapped: VaultWrappedKey; labelledVersion?: number } {
  const bad = (why: string): ImagegateError => new ImagegateError('BAD_FORMAT', `${where}: the ${VAULT_SCHEME} wrapped key ${why}`);
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

/**
 * A Vault-wrapped layer key as an image's annotation names it: the Transit key (`MOUNT/keys/NAME`), the key version
 * read from the ciphertext, and the repository it is bound to. What policy, audit and admission reason about.
 */
export interface WrappedKeyReference {
  key: string;
  version: number;
  binding: string;
  /** The item's own version label disagrees with its ciphertext: it was edited after wrapping. */
  tampered?: true;
}

/** The wrapped-key references in a layer's annotation value; items that cannot be read at all are left out. */
export function vaultKeysOf(value: string | undefined): WrappedKeyReference[] {
  if (value === undefined) return [];
  return splitAnnotationItems(value).flatMap((item) => {
    if (item instanceof Error) return [];
    try {
      const { wrapped: w, labelledVersion } = parseVaultItem(item, 'layer');
      return [{ key: `${w.mount}/keys/${w.key}`, version: w.version, binding: w.binding, ...(labelledVersion !== undefined ? { tampered: true as const } : {}) }];
    } catch {
      return [];
    }
  });
}

/** Safe to show without any key: which Transit key, which version (the ciphertext's), which repository. */
export function describeVaultItem(item: Buffer): RecipientSummary[] {
  const { wrapped: w, labelledVersion } = parseVaultItem(item, 'layer');
  const tampered = labelledVersion !== undefined ? ` (TAMPERED: its label says v${labelledVersion})` : '';
  return [{ algorithm: 'vault-transit', detail: `${w.mount}/keys/${w.key} v${w.version} bound to ${w.binding}${tampered}` }];
}

/**
 * Wraps and unwraps layer keys through Transit. Calls made for the layers of one image in the same turn of the
 * event loop go to Vault as one batch request per key, so an image costs one round trip, not one per layer.
 */
export class VaultLayerKeys {
  private readonly wraps: Coalescer<TransitKeyRef, { plaintext: Buffer; context: Buffer }, WrappedByTransit>;
  private readonly unwraps: Coalescer<TransitKeyRef, { ciphertext: string; context: Buffer }, Buffer>;
  private readonly rewraps: Coalescer<TransitKeyRef, { ciphertext: string; context: Buffer }, WrappedByTransit>;

  constructor(readonly transit: Transit) {
    // Only derived keys use the context that binds a wrapped key to its repository: any other key is refused.
    const derivedOnly = new DerivedKeysOnly(transit);
    this.wraps = new Coalescer((key, items) => derivedOnly.encrypt(key, items));
    this.unwraps = new Coalescer((key, items) => derivedOnly.decrypt(key, items));
    this.rewraps = new Coalescer((key, items) => transit.rewrap(key, items));
  }

  /** Moves a wrapped key to its Transit key's latest version, inside Vault; the binding stays. */
  async rewrap(item: VaultWrappedKey, label: string): Promise<VaultWrappedKey> {
    const key = { mount: item.mount, name: item.key };
    const w = await this.labelled(label, this.rewraps.add(formatTransitKeyRef(key), key, { ciphertext: item.ciphertext, context: bindingContext(item.binding) }));
    return { ...item, version: w.keyVersion, ciphertext: w.ciphertext };
  }

  /**
   * Binds a wrapped key to another repository (promotion from staging to production): unwrapped with the old
   * binding and wrapped again with the new one, so it needs decrypt rights on the key, unlike `rewrap`.
   */
  async rebind(item: VaultWrappedKey, binding: string, label: string): Promise<VaultWrappedKey> {
    const key = { mount: item.mount, name: item.key };
    const plain = await this.unwrap(item, item.binding, label);
    try {
      const w = await this.labelled(label, this.wraps.add(formatTransitKeyRef(key), key, { plaintext: plain, context: bindingContext(binding) }));
      return { ...item, version: w.keyVersion, ciphertext: w.ciphertext, binding };
    } finally {
      plain.fill(0);
    }
  }

  private async labelled<T>(label: string, p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof ImagegateError) throw new ImagegateError(e.code, `${label}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  async wrap(privateOptions: Buffer, key: TransitKeyRef, binding: string): Promise<Buffer> {
    const w = await this.wraps.add(formatTransitKeyRef(key), key, { plaintext: Buffer.from(privateOptions), context: bindingContext(binding) });
    return encodeVaultItem({ v: 1, mount: key.mount, key: key.name, version: w.keyVersion, ciphertext: w.ciphertext, binding });
  }

  /**
   * Unwraps an item for an image found in `repository` (canonical, see src/image/reference.ts), refusing an item
   * bound to another repository before Vault is asked. Vault then derives the key from the binding as the item
   * spells it, so an item whose binding was edited to match fails there.
   */
  async unwrap(item: VaultWrappedKey, repository: string | undefined, label: string): Promise<Buffer> {
    if (repository !== undefined && canonicalBindingName(item.binding) !== canonicalBindingName(repository)) {
      throw new ImagegateError(
        'NO_MATCHING_KEY',
        `${label}: its layer key is bound to repository ${item.binding}, but the image is in ${repository}; an image moved between repositories must be re-bound with \`imagegate rewrap --bind\` by someone allowed to unwrap it`,
      );
    }
    const key = { mount: item.mount, name: item.key };
    return this.labelled(label, this.unwraps.add(formatTransitKeyRef(key), key, { ciphertext: item.ciphertext, context: bindingContext(item.binding) }));
  }
}
