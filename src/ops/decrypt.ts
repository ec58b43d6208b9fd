import { ImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { isEncryptedMediaType } from '../image/media-types.js';
import { prepareLayerDecryption } from '../crypto/layer-crypto.js';
import type { Keyring } from '../crypto/schemes/keyring.js';
import { copyImage, type CopyOptions, type CopyResult, type ImageRewriter, type LayerContext, type LayerRewrite } from './copy.js';
import { layerSelected, platformSelected, type LayerSelection } from './layer-selection.js';

export interface DecryptOptions extends LayerSelection, CopyOptions {
  /** Private keys and key-service sessions to unwrap layer keys with, and the repository the image is read from. */
  keyring: Keyring;
}

/**
 * Decrypts the encrypted layers of an image. Every layer key is unwrapped before any byte is written, so a wrong
 * key fails fast; each layer's HMAC is verified as it streams, and the destination commits only when every layer
 * verified, so a tampered layer leaves no output image.
 */
export async function decryptImage(source: ImageSource, destination: ImageDestination, options: DecryptOptions): Promise<CopyResult> {
  if (options.keyring.privateKeys.length === 0 && !options.keyring.hasSessions()) {
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
    const layer = await prepareLayerDecryption(desc, this.options.keyring, ctx.label);
    return { createTransform: () => layer.createDecipher(), finish: () => layer.decryptedDescriptor() };
  }
}
