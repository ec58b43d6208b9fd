import { ImagegateError } from '../../errors.js';
import { canonicalBindingName } from '../../image/reference.js';
import { Coalescer } from '../../util/coalesce.js';
import { DerivedKeysOnly } from '../../vault/derived-key.js';
import { formatTransitKey, type TransitKey } from '../../vault/transit-key.js';
import type { Transit, WrappedByTransit } from '../../vault/transit.js';
import { bindingContext, encodeVaultItem, type VaultWrappedKey } from './vault-item.js';

/**
 * Wraps and unwraps layer keys through Transit. Calls made for the layers of one image in the same turn of the
 * event loop go to Vault as one batch request per key, so an image costs one round trip, not one per layer.
 */
export class VaultLayerKeys {
  private readonly wraps: Coalescer<TransitKey, { plaintext: Buffer; context: Buffer }, WrappedByTransit>;
  private readonly unwraps: Coalescer<TransitKey, { ciphertext: string; context: Buffer }, Buffer>;
  private readonly rewraps: Coalescer<TransitKey, { ciphertext: string; context: Buffer }, WrappedByTransit>;

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
    const w = await this.labelled(label, key, this.rewraps.add(formatTransitKey(key), key, { ciphertext: item.ciphertext, context: bindingContext(item.binding) }));
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
      const w = await this.labelled(label, key, this.wraps.add(formatTransitKey(key), key, { plaintext: plain, context: bindingContext(binding) }));
      return { ...item, version: w.keyVersion, ciphertext: w.ciphertext, binding };
    } finally {
      plain.fill(0);
    }
  }

  /** Vault's answer for one layer, said of that layer: code, temporary flag and the key kept for logs and metrics. */
  private async labelled<T>(label: string, key: TransitKey, p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof ImagegateError) throw e.within((m) => `${label}: ${m}`, { layer: label, key: formatTransitKey(key) });
      throw e;
    }
  }

  async wrap(privateOptions: Buffer, key: TransitKey, binding: string): Promise<Buffer> {
    const w = await this.wraps.add(formatTransitKey(key), key, { plaintext: Buffer.from(privateOptions), context: bindingContext(binding) });
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
    return this.labelled(label, key, this.unwraps.add(formatTransitKey(key), key, { ciphertext: item.ciphertext, context: bindingContext(item.binding) }));
  }
}
