import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ImagegateError } from '../errors.js';
import { markReleasable, releaseChunk } from '../util/chunk-release.js';
import { afterCopy, StreamHash } from '../util/off-thread-hash.js';

/**
 * ocicrypt's only layer cipher, AES_256_CTR_HMAC_SHA256: AES-256 in CTR mode with the 16-byte nonce as the whole
 * initial 128-bit counter block (wrapping from ff..ff to 00..00, which OpenSSL's aes-256-ctr does), then
 * HMAC-SHA256 over the ciphertext with the same 32-byte key. No framing: ciphertext length = plaintext length.
 */
export const LAYER_CIPHER = 'AES_256_CTR_HMAC_SHA256';
const LAYER_KEY_BYTES = 32;
const LAYER_NONCE_BYTES = 16;
export const LAYER_HMAC_BYTES = 32;

export interface LayerSecret {
  key: Buffer;
  nonce: Buffer;
}

export function newLayerSecret(): LayerSecret {
  return { key: randomBytes(LAYER_KEY_BYTES), nonce: randomBytes(LAYER_NONCE_BYTES) };
}

function checkSecret(secret: LayerSecret): void {
  if (secret.key.length !== LAYER_KEY_BYTES) {
    throw new ImagegateError('BAD_FORMAT', `invalid layer key length of ${secret.key.length} bytes; need ${LAYER_KEY_BYTES} bytes`);
  }
  if (secret.nonce.length !== LAYER_NONCE_BYTES) {
    throw new ImagegateError('BAD_FORMAT', `invalid layer nonce length of ${secret.nonce.length} bytes; need ${LAYER_NONCE_BYTES} bytes`);
  }
}

/** Encrypts a layer stream; after it ended, `hmac()` is the MAC to publish in the public options. */
export class LayerEncryptStream extends Transform {
  private readonly cipher;
  /** On a worker thread for large layers (see off-thread-hash.ts), so AES and the MAC run on two cores. */
  private readonly mac: StreamHash;
  private result: Buffer | undefined;

  constructor(secret: LayerSecret) {
    super();
    checkSecret(secret);
    this.cipher = createCipheriv('aes-256-ctr', secret.key, secret.nonce);
    this.mac = new StreamHash('sha256', secret.key);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = markReleasable(this.cipher.update(chunk));
    releaseChunk(chunk);
    afterCopy(this.mac.update(out), () => cb(null, out), cb);
  }

  override _flush(cb: TransformCallback): void {
    const tail = this.cipher.final(); // empty for CTR, but final() must run
    afterCopy(tail.length > 0 ? this.mac.update(tail) : undefined, () => {
      if (tail.length > 0) this.push(tail);
      this.mac.digest().then((hex) => {
        this.result = Buffer.from(hex, 'hex');
        cb();
      }, cb);
    }, cb);
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.mac.close();
    cb(error);
  }

  hmac(): Buffer {
    if (this.result === undefined) throw new Error('LayerEncryptStream.hmac() called before the stream ended');
    return this.result;
  }
}

/**
 * Decrypts a layer stream and verifies the HMAC at the end. On mismatch the stream errors instead of ending, so
 * a consumer that commits its output only when the stream ends cleanly never commits tampered content.
 *
 * AES-CTR is malleable: whoever knows a stretch of plaintext can XOR the ciphertext into any other plaintext of the
 * same length, and every byte decrypted before the end is unauthenticated. A reader that stops early (gunzip and tar
 * both have an end of their own, and padding can follow it) never reaches the check, so consumers must wait for this
 * stream to end, or ask `verified`, before they trust anything it produced.
 */
export class LayerDecryptStream extends Transform {
  private readonly decipher;
  private readonly mac: StreamHash;
  private hmacVerified = false;

  constructor(
    secret: LayerSecret,
    private readonly expectedHmac: Buffer,
    private readonly what: string,
  ) {
    super();
    checkSecret(secret);
    if (expectedHmac.length !== LAYER_HMAC_BYTES) {
      throw new ImagegateError('BAD_FORMAT', `${what}: the published HMAC is ${expectedHmac.length} bytes; need ${LAYER_HMAC_BYTES}`);
    }
    this.decipher = createDecipheriv('aes-256-ctr', secret.key, secret.nonce);
    this.mac = new StreamHash('sha256', secret.key);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = markReleasable(this.decipher.update(chunk));
    // The ciphertext is freed only once the MAC has its copy: a busy hashing thread may still be copying it.
    afterCopy(
      this.mac.update(chunk),
      () => {
        releaseChunk(chunk);
        cb(null, out);
      },
      cb,
    );
  }

  override _flush(cb: TransformCallback): void {
    const tail = this.decipher.final();
    if (tail.length > 0) this.push(tail);
    this.mac.digest().then((hex) => this.check(Buffer.from(hex, 'hex'), cb), cb);
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.mac.close();
    cb(error);
  }

  private check(actual: Buffer, cb: TransformCallback): void {
    if (!timingSafeEqual(actual, this.expectedHmac)) {
      cb(
        new ImagegateError(
          'INTEGRITY',
          `${this.what}: HMAC verification failed; the encrypted layer was modified or corrupted after encryption. Nothing was written; re-fetch the image or ask its publisher`,
        ),
      );
      return;
    }
    this.hmacVerified = true;
    cb();
  }

  /** True once every byte of the ciphertext went through and the HMAC over all of it matched the published one. */
  get verified(): boolean {
    return this.hmacVerified;
  }
}
