import type { Readable } from 'node:stream';
import { ImagegateError } from '../errors.js';
import type { LayerDecryptStream } from '../crypto/layer-cipher.js';
import { prepareLayerDecryption } from '../crypto/layer-crypto.js';
import type { Keyring } from '../crypto/schemes/keyring.js';
import { formatPlatform, type Descriptor, type Platform } from '../image/descriptor.js';
import type { ImageSource } from '../image/image.js';
import { decryptedMediaType, isEncryptedMediaType } from '../image/media-types.js';
import { loadImageTree, selectPlatformManifest } from '../image/tree.js';
import { unpackLayers, type UnpackLayer, type UnpackReport } from '../unpack/unpack.js';
import { wholeLayerStream } from '../unpack/whole-layer-stream.js';

export interface UnpackImageOptions {
  platform: Platform;
  into: string;
  /** Image-root-relative paths the layers may write. */
  allowedPaths: string[];
  /** Unpack only the encrypted layers (the pod model: the plaintext base runs as the container image). */
  encryptedOnly: boolean;
  /** Private keys and key-service sessions to unwrap layer keys with, and the repository the image is read from. */
  keyring: Keyring;
  /** The most uncompressed bytes the layers may add up to (default DEFAULT_MAX_UNPACKED_BYTES). */
  maxUnpackedBytes?: number;
  /** Keep setuid, setgid and sticky bits (dropped by default). */
  keepSpecialBits?: boolean;
}

/**
 * Decrypts and unpacks an image's layers for `platform` into a directory (the pod model's init container). Every
 * layer key is unwrapped before any byte is read; each layer streams registry → digest check → decrypt (HMAC) →
 * gunzip → safe unpack, and counts as read only once the whole ciphertext went through and its HMAC matched (not
 * when gzip or tar say they are done); nothing appears in the directory until every layer verified.
 */
export async function unpackImage(source: ImageSource, options: UnpackImageOptions): Promise<UnpackReport & { layers: number; platform?: string }> {
  const root = await loadImageTree(source, await source.rootDescriptor(), source.description);
  const { node, platform } = selectPlatformManifest(root, options.platform, source.description);
  const chosen = node.manifest.layers.map((d, index) => ({ d, index })).filter(({ d }) => !options.encryptedOnly || isEncryptedMediaType(d.mediaType));
  const where = `${source.description}${platform !== undefined ? ` ${formatPlatform(platform)}` : ''}`;
  const layers = await Promise.all(chosen.map(({ d, index }) => planLayer(source, d, `${where} layer ${index} (${d.digest})`, options)));
  const report = await unpackLayers(layers, options.into, {
    allowedPaths: options.allowedPaths,
    ...(options.maxUnpackedBytes !== undefined ? { maxUnpackedBytes: options.maxUnpackedBytes } : {}),
    ...(options.keepSpecialBits !== undefined ? { keepSpecialBits: options.keepSpecialBits } : {}),
  });
  return { ...report, layers: layers.length, ...(platform !== undefined ? { platform: formatPlatform(platform) } : {}) };
}

async function planLayer(source: ImageSource, desc: Descriptor, label: string, options: UnpackImageOptions): Promise<UnpackLayer> {
  const encrypted = isEncryptedMediaType(desc.mediaType);
  const plainType = encrypted ? decryptedMediaType(desc.mediaType) : desc.mediaType;
  const compression = plainType.endsWith('+gzip') || plainType.endsWith('.tar.gzip') ? 'gzip' : plainType.endsWith('+zstd') ? 'zstd' : 'none';
  if (compression === 'zstd') throw new ImagegateError('UNSUPPORTED', `${label} is zstd-compressed, which this build cannot unpack yet`);
  let decrypt: (() => LayerDecryptStream) | undefined;
  if (encrypted) {
    const layer = await prepareLayerDecryption(desc, options.keyring, label);
    decrypt = () => layer.createDecipher();
  }
  return {
    label,
    async open(): Promise<Readable> {
      const stages = { gzip: compression === 'gzip', ...(decrypt !== undefined ? { decrypt: decrypt() } : {}) };
      return wholeLayerStream(await source.openBlob(desc), stages, label, (e) => layerError(e, label, encrypted));
    },
  };
}

/**
 * Our errors pass as they are. Anything else (zlib, tar) is the content's fault: for an encrypted layer that means
 * it was altered after encryption (decrypting altered bytes gives garbage before the HMAC at the end can say so).
 */
function layerError(e: unknown, label: string, encrypted: boolean): Error {
  if (e instanceof ImagegateError) return e;
  const why = e instanceof Error ? e.message : String(e);
  return encrypted
    ? new ImagegateError('INTEGRITY', `${label}: the decrypted layer is not a valid archive (${why}); it was altered after encryption, and is refused`)
    : new ImagegateError('BAD_FORMAT', `${label}: the layer is not a valid archive (${why})`);
}
