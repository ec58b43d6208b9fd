import { ImagegateError } from '../errors.js';
import type { Descriptor, LayerDescription } from '../image/descriptor.js';
import { decryptedMediaType, encryptedMediaType } from '../image/media-types.js';
import { LayerDecryptStream, LayerEncryptStream, newLayerSecret } from './layer-cipher.js';
import { decodePrivateOptions, decodePublicOptions, ENC_ANNOTATION_PREFIX, encodePrivateOptions, encodePublicOptions, PUBOPTS_ANNOTATION } from './layer-options.js';
import { describeRecipients } from './layer-recipients.js';
import { joinAnnotationItems, splitAnnotationItems } from './schemes/annotation-items.js';
import type { LayerKeyWrapper } from './schemes/key-scheme.js';
import type { Keyring } from './schemes/keyring.js';
import { keyAnnotations } from './schemes/registry.js';

/**
 * Encrypting and decrypting one layer, ocicrypt's EncryptLayer and DecryptLayer: everything between a layer
 * descriptor and the cipher stream (the layer's secret, its options, wrapping and unwrapping them with the key
 * schemes, and the descriptor that results). Operations (encrypt, decrypt, unpack, check-access) call this; none of
 * them knows a scheme.
 */

export interface LayerEncryption {
  /** The cipher for the layer's bytes; call once. */
  createCipher(): LayerEncryptStream;
  /** The encrypted layer's descriptor (without digest and size, which the copy fills in) once the cipher is done. */
  encryptedDescriptor(): LayerDescription;
}

/**
 * A fresh key and nonce for the layer, its private options wrapped by every scheme at once (a key service batches
 * the calls of all layers, which are planned together). Recipients without wrappers are left out.
 */
export async function prepareLayerEncryption(desc: Descriptor, wrappers: readonly LayerKeyWrapper[]): Promise<LayerEncryption> {
  const secret = newLayerSecret();
  const privateOptions = encodePrivateOptions(secret, desc.digest);
  const wrapped: Record<string, string> = {};
  try {
    const perScheme = await Promise.all(
      wrappers.filter((w) => w.count > 0).map(async (w) => ({ annotation: w.scheme.annotation, items: await w.wrap(privateOptions) })),
    );
    for (const { annotation, items } of perScheme) for (const item of items) wrapped[annotation] = joinAnnotationItems(wrapped[annotation], item);
  } catch (e) {
    secret.key.fill(0);
    throw e;
  } finally {
    privateOptions.fill(0);
  }
  let cipher: LayerEncryptStream | undefined;
  return {
    createCipher() {
      cipher = new LayerEncryptStream(secret);
      return cipher;
    },
    encryptedDescriptor() {
      if (cipher === undefined) throw new Error('encryptedDescriptor() before createCipher()');
      const { digest: _d, size: _s, mediaType, annotations, ...rest } = desc;
      secret.key.fill(0);
      return {
        ...rest,
        mediaType: encryptedMediaType(mediaType),
        annotations: { ...annotations, ...wrapped, [PUBOPTS_ANNOTATION]: encodePublicOptions(cipher.hmac()) },
      };
    },
  };
}

export interface LayerDecryption {
  /** The decipher for the layer's bytes, which verifies the HMAC at the end; may be called again for a retry. */
  createDecipher(): LayerDecryptStream;
  /** The plaintext layer's descriptor: decrypted media type, the encryption annotations gone. Wipes the key. */
  decryptedDescriptor(): LayerDescription;
  /** Wipes the layer key (done by decryptedDescriptor; for paths that never ask for it). */
  wipe(): void;
}

/** Unwraps a layer's key with what `keyring` holds; fails, naming the layer and its recipients, when nothing fits. */
export async function prepareLayerDecryption(desc: Descriptor, keyring: Keyring, label: string): Promise<LayerDecryption> {
  const annotations = desc.annotations ?? {};
  const pub = decodePublicOptions(annotations[PUBOPTS_ANNOTATION], label);
  const privateBytes = await unwrapLayerOptions(label, annotations, keyring);
  const priv = decodePrivateOptions(privateBytes, pub, label);
  privateBytes.fill(0);
  const wipe = (): void => {
    priv.secret.key.fill(0);
  };
  return {
    createDecipher: () => new LayerDecryptStream(priv.secret, pub.hmac, label),
    decryptedDescriptor() {
      wipe();
      const { digest: _d, size: _s, mediaType, annotations: _a, ...rest } = desc;
      const kept = Object.fromEntries(Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)));
      return Object.keys(kept).length > 0 ? { ...rest, mediaType: decryptedMediaType(mediaType), annotations: kept } : { ...rest, mediaType: decryptedMediaType(mediaType) };
    },
    wipe,
  };
}

/** The remedy when no scheme this build has wraps the layer's key: some recipient's private key might still. */
const KEY_FILE_HINT = 'Give the private key of one of its recipients with --key.';

/**
 * Tries the keyring on every wrapped item of every scheme this build has, in the layer's order; returns the private
 * options of the first that unwraps. When none does, the error names the layer, its schemes and recipients, and what
 * was tried, with each scheme's remedy.
 */
export async function unwrapLayerOptions(label: string, annotations: Readonly<Record<string, string>>, keyring: Keyring): Promise<Buffer> {
  const found = keyAnnotations(annotations);
  const problems: string[] = [];
  for (const { name, scheme, value } of found) {
    if (scheme === undefined) continue;
    const items: Buffer[] = [];
    for (const item of splitAnnotationItems(value)) {
      if (item instanceof Error) {
        problems.push(`${name}: ${item.message}`);
        break;
      }
      items.push(item);
    }
    const opts = await scheme.unwrap(items, keyring, label);
    if (opts !== undefined) return opts;
  }
  const tried = keyring.privateKeys.map((k) => k.source).join(', ');
  const held = found.length > 0 ? describeRecipients(annotations) : 'no wrapped keys at all';
  const unsupported = found.filter((a) => a.scheme === undefined).map((a) => a.name);
  const hints = [...new Set(found.flatMap((a) => (a.scheme !== undefined ? [a.scheme.unwrapHint] : [])))];
  throw new ImagegateError(
    'NO_MATCHING_KEY',
    `${label} cannot be decrypted with the given key(s) (${tried}): it is encrypted for ${held}.` +
      (unsupported.length > 0 ? ` This build cannot unwrap ${unsupported.join(', ')}.` : '') +
      (problems.length > 0 ? ` Problems: ${problems.join('; ')}.` : '') +
      ` ${(hints.length > 0 ? hints : [KEY_FILE_HINT]).join(' ')}`,
    { fields: { layer: label } },
  );
}
