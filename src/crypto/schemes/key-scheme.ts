import type { Keyring } from './keyring.js';

/**
 * One key-wrapping scheme of ocicrypt (`jwe`, `pkcs7`, `pgp`, `provider.NAME`): it wraps a layer's private options
 * for its recipients and owns one layer annotation, `org.opencontainers.image.enc.keys.NAME`, whose value is a
 * comma-separated list of base64 items. The layer cipher knows nothing of schemes, and nothing outside
 * `src/crypto/schemes/` knows a scheme by name: encrypt, decrypt, unpack, inspect, audit, policy and the key provider
 * all go through this interface and the registration in `./registry.ts`.
 *
 * What a new scheme (a cloud KMS, say) must provide, and where it goes:
 * - a file in `src/crypto/schemes/` implementing this interface (and its session type, if it calls a service);
 * - one line in `./registry.ts`;
 * - if it calls a service, the CLI registers that session on the keyring where it registers Vault's
 *   (`cli/keyring.ts`).
 * The optional members are capabilities: a scheme without them is still encrypted to, decrypted and inspected;
 * `keyReferences` makes its keys visible to audit, admission policy and check-access, `rewrap` to `imagegate rewrap`,
 * `provider` to `imagegate keyprovider`.
 */
export interface KeyScheme {
  /** Scheme name as ocicrypt and `inspect` show it, e.g. `jwe`, `provider.NAME`. */
  readonly name: string;
  /** The layer annotation this scheme writes. */
  readonly annotation: string;
  /** The `--recipient` prefixes that name this scheme (`jwe` for `jwe:FILE`), matched before the first `:` or whole. */
  readonly recipientPrefixes: readonly string[];
  /** How `--recipient` and `--help` write a recipient of this scheme, e.g. `jwe:PUBLIC_KEY`. */
  readonly recipientUsage: string;
  /** What to give a command that could not unwrap this scheme's keys, e.g. "pass --vault …". */
  readonly unwrapHint: string;

  /**
   * Reads `--recipient` values of this scheme (without the prefix) into something that wraps layer keys for all of
   * them. Loads key files or checks the service now, so a bad recipient fails before any layer is read.
   */
  recipients(values: readonly string[], context: RecipientContext): Promise<LayerKeyWrapper>;

  /**
   * Tries what `keyring` holds for this scheme on the annotation's items (in order). Returns the private options, or
   * undefined when the keyring holds nothing this scheme can use or no key fits; throws when the scheme's service
   * refused with a reason worth more than "no key fits" (Vault: denied by policy, another repository's binding).
   */
  unwrap(items: readonly Buffer[], keyring: Keyring, where: string): Promise<Buffer | undefined>;

  /** What can be told about an item's recipients without any key (algorithms, key ids, key names). */
  describe(item: Buffer): RecipientSummary[];

  /**
   * The keys an item is wrapped by, when a key service holds them (so it decides who unwraps): what audit, admission
   * policy and check-access reason about. A scheme without it decrypts with a private key, anywhere.
   */
  keyReferences?(item: Buffer): WrappedKeyReference[];

  /** Moves an item to its key's latest version, or binds it to another repository, inside the key service. */
  rewrap?(item: Buffer, request: RewrapRequest, keyring: Keyring): Promise<RewrapResult>;

  /** Answers ocicrypt key-provider requests (`imagegate keyprovider`) for recipients `provider:NAME[:PARAMS]`. */
  readonly provider?: KeyProviderScheme;
}

export interface RecipientContext {
  /** The repository the image is written to (canonical `HOST/PATH`), which schemes may bind wrapped keys to. */
  binding: string | undefined;
  keyring: Keyring;
}

/** A scheme's recipients, ready to wrap each layer's private options. */
export interface LayerKeyWrapper {
  readonly scheme: KeyScheme;
  readonly count: number;
  /** The annotation items for one layer: one for all recipients (jwe), or one per key (a key service). */
  wrap(privateOptions: Buffer): Promise<Buffer[]>;
}

export interface RecipientSummary {
  /** Key-wrapping algorithm, e.g. `RSA-OAEP`, `ECDH-ES+A256KW`, `vault-transit`. */
  algorithm: string;
  /** Extra identifying detail that is safe to show: the curve, a key id, a key name. */
  detail?: string;
}

/**
 * A layer key wrapped by a key service, as the image's annotation names it: the key (for Vault Transit
 * `MOUNT/keys/NAME`), the key version (read from what the service vouches for, the ciphertext, never from a label),
 * and the repository the wrapped key is bound to. What policy, audit and admission reason about.
 */
export interface WrappedKeyReference {
  key: string;
  version: number;
  binding: string;
  /** The item's own version label disagrees with its ciphertext: it was edited after wrapping. */
  tampered?: true;
}

export interface RewrapRequest {
  /** Bind to this repository (promotion), which needs unwrap rights; otherwise only the key version moves. */
  bindTo?: string;
  /** The layer, for messages. */
  where: string;
}

export interface RewrapResult {
  item: Buffer;
  from: WrappedKeyReference;
  to: WrappedKeyReference;
}

export interface KeyProviderScheme {
  /** ocicrypt's provider name: recipients `provider:NAME[:PARAMS]`, parameters keyed by NAME. */
  readonly name: string;
  /** How a recipient of the provider is written, e.g. `provider:NAME:KEY`. */
  readonly recipientUsage: string;
  /** Wraps for a keywrap request; `parameter` is what followed `provider:NAME:` in the recipient, if anything. */
  wrap(optsData: Buffer, parameter: string | undefined, keyring: Keyring, defaults: KeyProviderDefaults): Promise<Buffer>;
}

export interface KeyProviderDefaults {
  /** Key used when the recipient names none (`provider:NAME` alone). */
  key?: string;
  /** Repository keys are bound to when the recipient names none. */
  binding?: string;
}
