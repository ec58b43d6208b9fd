import { ImagegateError } from '../errors.js';
import type { ItemResult } from '../util/coalesce.js';
import { formatTransitKey, type TransitKey } from './transit-key.js';
import type { Transit, WrappedByTransit } from './transit.js';

/** A context no binding produces (bindings are `imagegate:v1:HOST/PATH`). */
const PROBE_CONTEXT = Buffer.from('imagegate:probe:not-a-repository');
const PROBE_PLAINTEXT = Buffer.alloc(1);
/** OpenBao's and Vault's answer when a derived key gets no context. */
const MISSING_CONTEXT = /missing 'context'/i;

/**
 * Transit encrypt and decrypt that refuse a key which is not `derived`.
 *
 * A wrapped layer key is bound to its repository through the Transit `context`, and only a derived key uses it: a
 * key created without `derived=true` ignores the context, so a wrapped key copied into any other repository unwraps
 * there. Reading the key's `derived` flag needs `read` on `transit/keys/KEY`, which CI identities (update on
 * `transit/encrypt/KEY`) and nodes (update on `transit/decrypt/KEY`) do not have, so the keys are asked instead,
 * through the capability each identity already has. (A batch must give every item a context or none: "context
 * should be set either in all the request blocks or in none".)
 *
 * - Decrypt: the batch carries one more item, the first ciphertext under a context no binding produces. A derived
 *   key derives another key from it and fails ("message authentication failed"); a key that is not derived ignores
 *   the context and answers. No extra round trip.
 * - Encrypt: one item without a context, sent after the first batch for each key: a derived key refuses it ("missing
 *   'context' for key derivation"), any other key answers. One more request per key and process; nothing is written
 *   before it has answered.
 */
export class DerivedKeysOnly {
  private readonly derived = new Map<string, Promise<void>>();

  constructor(readonly transit: Transit) {}

  async encrypt(key: TransitKey, items: Array<{ plaintext: Buffer; context: Buffer }>): Promise<Array<ItemResult<WrappedByTransit>>> {
    const results = await this.transit.encrypt(key, items);
    // After the batch, never beside it: to an identity allowed to create keys, an encrypt for a missing key creates
    // it (upsert), derived only when the request has a context, which the probe has not.
    await this.checkDerivedForEncrypt(key);
    return results;
  }

  async decrypt(key: TransitKey, items: Array<{ ciphertext: string; context: Buffer }>): Promise<Array<ItemResult<Buffer>>> {
    if (items.length === 0) return [];
    const results = await this.transit.decrypt(key, [...items, { ciphertext: items[0]!.ciphertext, context: PROBE_CONTEXT }]);
    const probe = results.pop();
    if (probe?.ok === true) {
      probe.value.fill(0);
      for (const r of results) if (r.ok) r.value.fill(0);
      throw notDerived(key);
    }
    return results;
  }

  /** Resolves once `key` is known to be derived; remembered for the process (a key's `derived` never changes). */
  private checkDerivedForEncrypt(key: TransitKey): Promise<void> {
    const name = formatTransitKey(key);
    let check = this.derived.get(name);
    if (check === undefined) {
      check = this.transit.encrypt(key, [{ plaintext: PROBE_PLAINTEXT }]).then(([probe]) => {
        if (probe?.ok === true) throw notDerived(key);
        // Anything else (no permission, no such key) is the batch's error too; it is reported from there.
        if (probe !== undefined && !MISSING_CONTEXT.test(probe.error.message)) throw probe.error;
      });
      this.derived.set(name, check);
      check.catch(() => this.derived.delete(name));
    }
    return check;
  }
}

function notDerived(key: TransitKey): ImagegateError {
  const name = formatTransitKey(key);
  return new ImagegateError(
    'BAD_KEY',
    `${name} is not a derived Transit key, so it cannot bind layer keys to their repository (a wrapped key copied into ` +
      `another repository would unwrap there); imagegate refuses it. A key's "derived" is fixed when it is created, so ` +
      `create a new one, \`vault write ${key.mount}/keys/NEW_NAME derived=true\`, or declare it in a VaultSetup document ` +
      'and run `imagegate vault setup`; then encrypt with that key',
  );
}
