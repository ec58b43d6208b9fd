import { ImagegateError } from '../../errors.js';
import { canonicalBindingName } from '../../image/reference.js';
import { parseTransitKey, type TransitKey } from '../../vault/transit-key.js';
import { KEYS_ANNOTATION_PREFIX } from '../layer-options.js';
import type { KeyProviderDefaults, KeyProviderScheme, KeyScheme, LayerKeyWrapper, RecipientContext, RewrapRequest, RewrapResult } from './key-scheme.js';
import { keyringSlot, type Keyring } from './keyring.js';
import { decodeVaultItem, describeVaultItem, encodeVaultItem, referenceOf, referenceOfWrapped } from './vault-item.js';
import type { VaultLayerKeys } from './vault-layer-keys.js';

/**
 * Layer keys wrapped by a Vault Transit key. The annotation is the one ocicrypt gives the key provider named
 * `imagegate` (`provider.imagegate`), so runtimes that call `imagegate keyprovider` decrypt these images, and
 * imagegate itself unwraps them by calling Vault directly. Vault's batching (one request per key and image) lives in
 * VaultLayerKeys; the Transit session comes from the keyring.
 */
const VAULT_PROVIDER_NAME = 'imagegate';
const VAULT_SCHEME = `provider.${VAULT_PROVIDER_NAME}`;
const PROVIDER_RECIPIENT = `provider:${VAULT_PROVIDER_NAME}`;

/** Where the CLI puts the Transit session (VAULT_ADDR and credentials) on a keyring. */
export const TRANSIT_SESSION = keyringSlot<VaultLayerKeys>(VAULT_SCHEME);

/** `provider:imagegate:[MOUNT/]KEY@HOST/REPOSITORY`, the recipient a runtime's ocicrypt hands the key provider. */
export const PROVIDER_RECIPIENT_USAGE = `${PROVIDER_RECIPIENT}:[MOUNT/]KEY@HOST/REPOSITORY`;
/** What a runtime's decryption configuration names to have this key provider unwrap. */
export const PROVIDER_DECRYPT_USAGE = PROVIDER_RECIPIENT;

class VaultTransitScheme implements KeyScheme {
  readonly name = VAULT_SCHEME;
  readonly annotation = `${KEYS_ANNOTATION_PREFIX}${VAULT_SCHEME}`;
  readonly recipientPrefixes = ['vault', PROVIDER_RECIPIENT];
  readonly recipientUsage = 'vault:[MOUNT/]KEY';
  readonly unwrapHint = 'Its key is wrapped by Vault: pass --vault (with VAULT_ADDR and credentials).';

  async recipients(values: readonly string[], context: RecipientContext): Promise<LayerKeyWrapper> {
    const binding = context.binding;
    if (binding === undefined) {
      throw new ImagegateError(
        'USAGE',
        'vault: recipients bind each layer key to the repository it is pushed to; push to docker://HOST/REPO, or name the repository with --bind HOST/REPO',
      );
    }
    return this.wrapperFor(values.map(parseTransitKey), binding, context.keyring);
  }

  /** One item per key: each Transit key unwraps on its own, and a Vault batch gathers every layer's call per key. */
  async wrapperFor(keys: readonly TransitKey[], binding: string, keyring: Keyring): Promise<LayerKeyWrapper> {
    const transit = await transitOf(keyring, 'wrap layer keys with vault: recipients');
    return { scheme: this, count: keys.length, wrap: (privateOptions) => Promise.all(keys.map((key) => transit.wrap(privateOptions, key, binding))) };
  }

  /**
   * Items are tried in order; Vault's refusal of the last one is the error, since it says why (denied by policy,
   * retired key version, another repository's binding) better than "no key fits".
   */
  async unwrap(items: readonly Buffer[], keyring: Keyring, where: string): Promise<Buffer | undefined> {
    const transit = await keyring.session(TRANSIT_SESSION);
    if (transit === undefined) return undefined;
    let failure: unknown = new ImagegateError('BAD_FORMAT', `${where}: the ${VAULT_SCHEME} annotation holds no readable wrapped key`, { fields: { layer: where, scheme: VAULT_SCHEME } });
    for (const item of items) {
      try {
        return await transit.unwrap(decodeVaultItem(item, where), keyring.repository, where);
      } catch (e) {
        failure = e;
      }
    }
    throw failure;
  }

  describe(item: Buffer) {
    return describeVaultItem(item);
  }

  keyReferences(item: Buffer) {
    return [referenceOf(item, 'layer')];
  }

  async rewrap(item: Buffer, request: RewrapRequest, keyring: Keyring): Promise<RewrapResult> {
    const transit = await transitOf(keyring, 'rewrap layer keys');
    const before = decodeVaultItem(item, request.where);
    const after =
      request.bindTo !== undefined && request.bindTo !== canonicalBindingName(before.binding)
        ? await transit.rebind(before, request.bindTo, request.where)
        : await transit.rewrap(before, request.where);
    return { item: encodeVaultItem(after), from: referenceOfWrapped(before), to: referenceOfWrapped(after) };
  }

  readonly provider: KeyProviderScheme = {
    name: VAULT_PROVIDER_NAME,
    recipientUsage: `${PROVIDER_RECIPIENT}:[MOUNT/]KEY`,
    wrap: async (optsData: Buffer, parameter: string | undefined, keyring: Keyring, defaults: KeyProviderDefaults): Promise<Buffer> => {
      const { key, binding } = providerRecipient(parameter, defaults);
      const [item] = await (await this.wrapperFor([key], binding, keyring)).wrap(optsData);
      return item!;
    },
  };
}

async function transitOf(keyring: Keyring, what: string): Promise<VaultLayerKeys> {
  const transit = await keyring.session(TRANSIT_SESSION);
  if (transit === undefined) throw new ImagegateError('USAGE', `to ${what}, imagegate needs Vault: set VAULT_ADDR and credentials (see \`imagegate vault --help\`)`);
  return transit;
}

/**
 * The key provider's recipient parameters (`provider:imagegate:PARAMS`, `Enabled` when there were none): which Transit
 * key wraps, and which repository the wrapped key is bound to, `[MOUNT/]KEY[@REPOSITORY]`, with the configuration's
 * defaults for what is left out.
 */
function providerRecipient(parameter: string | undefined, defaults: KeyProviderDefaults): { key: TransitKey; binding: string } {
  const params = parameter === 'Enabled' ? undefined : parameter;
  const at = params?.indexOf('@') ?? -1;
  const keyText = (at >= 0 ? params!.slice(0, at) : params) || defaults.key;
  const binding = (at >= 0 ? params!.slice(at + 1) : undefined) || defaults.binding;
  if (keyText === undefined) {
    throw new ImagegateError('USAGE', 'the recipient names no Transit key: use provider:imagegate:[MOUNT/]KEY@HOST/REPOSITORY, or set a default key in the key-provider configuration');
  }
  if (binding === undefined) {
    throw new ImagegateError('USAGE', `the recipient names no repository to bind ${keyText} to: use provider:imagegate:${keyText}@HOST/REPOSITORY`);
  }
  return { key: parseTransitKey(keyText), binding };
}

/** The `provider.imagegate` scheme: layer keys wrapped by Vault Transit keys, bound to a repository. */
export const vaultTransitScheme: KeyScheme = new VaultTransitScheme();
