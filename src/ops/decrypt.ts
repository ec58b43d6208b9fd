import { ImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { decryptedMediaType, isEncryptedMediaType } from '../image/media-types.js';
import type { LoadedKey } from '../crypto/key-files.js';
import { splitAnnotationItems } from '../crypto/key-wrapper.js';
import { LayerDecryptStream } from '../crypto/layer-cipher.js';
import { decodePrivateOptions, decodePublicOptions, ENC_ANNOTATION_PREFIX, PUBOPTS_ANNOTATION } from '../crypto/layer-options.js';
import { keyAnnotations, keyWrapper } from '../crypto/wrappers/registry.js';
import { decodeVaultItem, VAULT_SCHEME, type VaultLayerKeys } from '../crypto/wrappers/vault.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';
import { layerSelected, platformSelected, type LayerSelection } from './layer-selection.js';
import { describeRecipients } from './recipients.js';

export interface DecryptOptions extends LayerSelection, CopyOptions {
  keys: LoadedKey[];
  /** Unwrap Vault-wrapped layer keys through Transit, as this session's identity. */
  vault?: VaultUnwrapping;
}

export interface VaultUnwrapping {
  keys: VaultLayerKeys;
  /** The repository the image is read from (`host/path`), checked against each key's binding; undefined off-registry. */
  repository: string | undefined;
}

/**
 * Decrypts the encrypted layers of an image. Every layer key is unwrapped before any byte is written, so a wrong
 * key fails fast; each layer's HMAC is verified as it streams, and the destination commits only when every layer
 * verified, so a tampered layer leaves no output image.
 */
export async function decryptImage(source: ImageSource, destination: ImageDestination, options: DecryptOptions): Promise<CopyResult> {
  if (options.keys.length === 0 && options.vault === undefined) {
    throw new ImagegateError('USAGE', 'decrypt needs at least one private key (--key KEY.pem), or --vault for Vault-wrapped images');
  }
  return copyImage(source, destination, new DecryptRewriter(options), options);
}

class DecryptRewriter implements ImageRewriter {
  readonly encrypts = false;

  constructor(private readonly options: DecryptOptions) {}

  async planLayer(ctx: LayerContext): Promise<LayerRewrite | undefined> {
    const desc = ctx.descriptor;
    if (!isEncryptedMediaType(desc.mediaType)) return undefined;
    if (!platformSelected(this.options, ctx.platform)) return undefined;
    if (!layerSelected(this.options, ctx.index, ctx.count, ctx.platform)) return undefined;
    const annotations = desc.annotations ?? {};
    const pub = decodePublicOptions(annotations[PUBOPTS_ANNOTATION], ctx.label);
    const privateBytes = await unwrapLayerKey(ctx.label, annotations, this.options.keys, this.options.vault);
    const priv = decodePrivateOptions(privateBytes, pub, ctx.label);
    privateBytes.fill(0);
    return {
      createTransform: () => new LayerDecryptStream(priv.secret, pub.hmac, ctx.label),
      finish: () => {
        priv.secret.key.fill(0);
        const { digest: _d, size: _s, mediaType, annotations: _a, ...rest } = desc;
        const kept = Object.fromEntries(Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)));
        return Object.keys(kept).length > 0
          ? { ...rest, mediaType: decryptedMediaType(mediaType), annotations: kept }
          : { ...rest, mediaType: decryptedMediaType(mediaType) };
      },
    };
  }
}

/**
 * Tries every key on every wrapped item of every scheme this build supports; returns the private options of the
 * first that unwraps. When none does, the error names the layer, its schemes and recipients, and the keys tried.
 */
export async function unwrapLayerKey(label: string, annotations: Record<string, string>, keys: readonly LoadedKey[], vault?: VaultUnwrapping): Promise<Buffer> {
  const schemes = keyAnnotations(annotations);
  const problems: string[] = [];
  for (const [scheme, value] of schemes) {
    if (scheme === VAULT_SCHEME && vault !== undefined) return unwrapWithVault(label, value, vault);
    const wrapper = keyWrapper(scheme);
    if (wrapper === undefined) continue;
    for (const item of splitAnnotationItems(value)) {
      if (item instanceof Error) {
        problems.push(`${scheme}: ${item.message}`);
        break;
      }
      const opts = await wrapper.unwrap(item, keys);
      if (opts !== undefined) return opts;
    }
  }
  const tried = keys.map((k) => k.source).join(', ');
  const held = schemes.length > 0 ? describeRecipients(annotations) : 'no wrapped keys at all';
  const unsupported = schemes.map(([s]) => s).filter((s) => keyWrapper(s) === undefined && s !== VAULT_SCHEME);
  const vaultHint = schemes.some(([s]) => s === VAULT_SCHEME) ? ' Its key is wrapped by Vault: pass --vault (with VAULT_ADDR and credentials).' : '';
  throw new ImagegateError(
    'NO_MATCHING_KEY',
    `${label} cannot be decrypted with the given key(s) (${tried}): it is encrypted for ${held}.` +
      (unsupported.length > 0 ? ` This build cannot unwrap ${unsupported.join(', ')}.` : '') +
      (problems.length > 0 ? ` Problems: ${problems.join('; ')}.` : '') +
      (vaultHint !== '' ? vaultHint : ' Give the private key of one of its recipients with --key.'),
  );
}

/**
 * Vault-wrapped items are tried in order; Vault's refusal of the last one is the error, since it says why (denied
 * by policy, retired key version, another repository's binding) better than "no key fits".
 */
async function unwrapWithVault(label: string, value: string, vault: VaultUnwrapping): Promise<Buffer> {
  let failure: unknown = new ImagegateError('BAD_FORMAT', `${label}: the ${VAULT_SCHEME} annotation holds no wrapped key`);
  for (const item of splitAnnotationItems(value)) {
    try {
      if (item instanceof Error) throw new ImagegateError('BAD_FORMAT', `${label}: ${item.message}`);
      return await vault.keys.unwrap(decodeVaultItem(item, label), vault.repository, label);
    } catch (e) {
      failure = e;
    }
  }
  throw failure;
}
