import { createDecipheriv } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LayerDecryptStream, LayerEncryptStream, newLayerSecret, type LayerSecret } from '../../../src/crypto/layer-cipher.js';
import { isImagegateError } from '../../../src/errors.js';
import { wholeLayerStream } from '../../../src/unpack/whole-layer-stream.js';
import { readAll } from '../../../src/util/streams.js';

const LABEL = 'layer 1 (sha256:test)';

/** Cut into small chunks, so stages see the bytes as a registry delivers them, not as one buffer. */
function chunked(bytes: Buffer, size = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

async function encrypt(secret: LayerSecret, plaintext: Buffer): Promise<{ ciphertext: Buffer; hmac: Buffer }> {
  const enc = new LayerEncryptStream(secret);
  const ciphertext = await readAll(chunked(plaintext).pipe(enc), 1 << 30, 'test');
  return { ciphertext, hmac: enc.hmac() };
}

/** new_ct = ct XOR old_pt XOR new_pt: what anyone who knows the plaintext can do to AES-CTR without the key. */
function forge(ciphertext: Buffer, known: Buffer, wanted: Buffer): Buffer {
  const padded = Buffer.alloc(ciphertext.length);
  wanted.copy(padded);
  return Buffer.from(ciphertext.map((b, i) => b ^ known[i]! ^ padded[i]!));
}

function read(blob: Buffer, stages: Parameters<typeof wholeLayerStream>[1]): Promise<Buffer> {
  return readAll(
    wholeLayerStream(chunked(blob), stages, LABEL, (e) => (e instanceof Error ? e : new Error(String(e)))),
    1 << 30,
    'test',
  );
}

describe('wholeLayerStream', () => {
  const tar = Buffer.from('the layer tar '.repeat(10_000));
  const layer = gzipSync(tar);

  it('gives the layer tar of a sound encrypted layer, and the decrypt stream has verified it', async () => {
    const secret = newLayerSecret();
    const { ciphertext, hmac } = await encrypt(secret, layer);
    const decrypt = new LayerDecryptStream(secret, hmac, LABEL);
    expect(await read(ciphertext, { gzip: true, decrypt })).toEqual(tar);
    expect(decrypt.verified).toBe(true);
  });

  it('does not end for a layer forged into a complete gzip stream plus zero padding: its HMAC fails', async () => {
    const secret = newLayerSecret();
    const original = gzipSync(Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251)));
    const { ciphertext, hmac } = await encrypt(secret, original);
    const evil = Buffer.from('the attacker replaced this layer');
    const forged = forge(ciphertext, original, gzipSync(evil));
    // The forgery is real: decrypted without the check, it is exactly the attacker's gzip stream and zeros...
    const plain = createDecipheriv('aes-256-ctr', secret.key, secret.nonce).update(forged);
    expect(gunzipSync(plain)).toEqual(evil);
    const decrypt = new LayerDecryptStream(secret, hmac, LABEL);
    const err = await read(forged, { gzip: true, decrypt }).catch((e: unknown) => e);
    // ...but the stream fails at the HMAC instead of ending when gunzip did.
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toMatch(/HMAC verification failed/);
    expect(decrypt.verified).toBe(false);
  });

  it('refuses bytes after the gzip stream even when the HMAC is sound (zero padding, which gunzip ignores)', async () => {
    const secret = newLayerSecret();
    const { ciphertext, hmac } = await encrypt(secret, Buffer.concat([layer, Buffer.alloc(10_000)]));
    const err = await read(ciphertext, { gzip: true, decrypt: new LayerDecryptStream(secret, hmac, LABEL) }).catch((e: unknown) => e);
    expect(isImagegateError(err, 'BAD_FORMAT')).toBe(true);
    expect((err as Error).message).toBe(`${LABEL}: 10000 byte(s) follow the end of the layer's gzip stream; a layer is one gzip stream and nothing after it, so it is refused`);
  });

  it('refuses other bytes after the gzip stream of a plain layer too', async () => {
    await expect(read(Buffer.concat([layer, Buffer.from([0, 0, 0, 1, 2, 3])]), { gzip: true })).rejects.toThrow(/6 byte\(s\) follow the end of the layer's gzip stream/);
    await expect(read(Buffer.concat([layer, Buffer.from('garbage')]), { gzip: true })).rejects.toThrow(/incorrect header check/);
  });

  it('reads several gzip members as one stream, as RFC 1952, Go and containerd do', async () => {
    expect(await read(Buffer.concat([gzipSync(tar), gzipSync(tar)]), { gzip: true })).toEqual(Buffer.concat([tar, tar]));
  });

  it('passes an uncompressed layer through', async () => {
    expect(await read(tar, { gzip: false })).toEqual(tar);
  });
});
