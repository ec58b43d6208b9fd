import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LayerDecryptStream, LayerEncryptStream, type LayerSecret } from '../../../src/crypto/layer-cipher.js';
import { encodePrivateOptions, encodePublicOptions } from '../../../src/crypto/layer-options.js';
import { isImagegateError } from '../../../src/errors.js';
import { readAll } from '../../../src/util/streams.js';

// Vectors from shared/reference/ocicrypt.md §9.2, produced with Go crypto/cipher and crypto/hmac.
const KEY = Buffer.from('01234567890123456789012345678912', 'ascii');
const SEQ48 = Buffer.from(Array.from({ length: 48 }, (_, i) => i));

const VECTORS = [
  {
    name: 'V1 plain nonce',
    nonce: '000102030405060708090a0b0c0d0e0f',
    pt: Buffer.from('this is some data'),
    ct: '689165ecbfa0cc73f4761fbcf15913781f',
    hmac: '5aba755270e5d163f699e731347013f7ffa2bdde1c47dd99808658a4e917b8ae',
  },
  {
    name: 'V2 full 128-bit counter wrap',
    nonce: 'ffffffffffffffffffffffffffffffff',
    pt: SEQ48,
    ct: '2979dda2ced827bbcdfa648a578cbf53e1d764f63b508eea23db41fe0debb5407f11aad2d43f29a19ae371efc023bcf5',
    hmac: '622201504c726a6a25642a66db7c46133c5c0e353f2bf394108258d1c6ef7687',
  },
  {
    name: 'V3 carry from the low into the high 64 bits',
    nonce: '0000000000000000ffffffffffffffff',
    pt: SEQ48,
    ct: '0bddf3429d3edd07d7327068f1d5ef6904de48e5e967ee5d3f07df5491e7fb0a192d4358c7d24c256dc9495b59fb349e',
    hmac: '125a323e888f2f31d5f3bc0f3b24ed185e6d962643a9fd5f363487ac792f11ce',
  },
  { name: 'V4 empty layer', nonce: '000102030405060708090a0b0c0d0e0f', pt: Buffer.alloc(0), ct: '', hmac: '88748996de5f3de63c8dc4dde5fc43627164be443f009b3d4e9bd0d5886609e2' },
];

async function run(stream: LayerEncryptStream | LayerDecryptStream, input: Buffer, chunk = 7): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  return readAll(Readable.from(parts).pipe(stream), 1 << 30, 'test');
}

describe('AES_256_CTR_HMAC_SHA256 layer cipher', () => {
  for (const v of VECTORS) {
    it(`matches ocicrypt: ${v.name}`, async () => {
      const secret: LayerSecret = { key: KEY, nonce: Buffer.from(v.nonce, 'hex') };
      const enc = new LayerEncryptStream(secret);
      const ct = await run(enc, v.pt);
      expect(ct.toString('hex')).toBe(v.ct);
      expect(enc.hmac().toString('hex')).toBe(v.hmac);
      const dec = new LayerDecryptStream(secret, Buffer.from(v.hmac, 'hex'), 'test layer');
      expect(await run(dec, ct)).toEqual(v.pt);
    });
  }

  it('writes the options JSON byte for byte as ocicrypt does (V1)', () => {
    const secret = { key: KEY, nonce: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') };
    const digest = `sha256:${createHash('sha256').update('this is some data').digest('hex')}` as const;
    expect(encodePrivateOptions(secret, digest).toString()).toBe(
      '{"symkey":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MTI=","digest":"sha256:dff90087e2a95f1c093cf40e7be6ef4e998e21b4ea38d0b494ea2fdb2576fcfe","cipheroptions":{"nonce":"AAECAwQFBgcICQoLDA0ODw=="}}',
    );
    expect(Buffer.from(encodePublicOptions(Buffer.from(VECTORS[0]!.hmac, 'hex')), 'base64').toString()).toBe(
      '{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"Wrp1UnDl0WP2mecxNHAT9/+ivd4cR92ZgIZYpOkXuK4=","cipheroptions":{}}',
    );
  });

  it('decrypts the skopeo 1.9.3 end-to-end vector', async () => {
    const secret = { key: Buffer.from('bPEEhXTCuAj0PV24W35kxhaIIEQvcqV8a67fbN29Pg8=', 'base64'), nonce: Buffer.from('uyEp6pFeTAreUa6TBF/jqw==', 'base64') };
    const ct = Buffer.from(
      '7a365e8ec2f974fd54c2e192208657766be5aa4346e5d24750740dc9b9d40315bf35d593f95f8021a713489d2dfd4d23cdb44fa5593a6260d75967d5df1fd62394608ff18abacce27246a0cffc04135fef693769dd8a5ee8e29f5295b686202d52d685669eed54a8b8c4f7bcbbf07b1beff5e0205bbc1bcd6992084727a1a04b',
      'hex',
    );
    const hmac = Buffer.from('alwaaGBgscSuBbozbc+DwTp1yOeAzlYD1G/UKHTIjNM=', 'base64');
    const pt = await run(new LayerDecryptStream(secret, hmac, 'skopeo layer'), ct, 13);
    expect(`sha256:${createHash('sha256').update(pt).digest('hex')}`).toBe('sha256:fded1eaa564867f0993dabfbc5d786fb4f6a1acc87ef4b8c9baf8f597103f8b7');
    expect(`sha256:${createHash('sha256').update(ct).digest('hex')}`).toBe('sha256:dade4790e6434e4cdf58bae7e0ccf1dacb98cc2b8893d54349a4c9356190584d');
  });

  it('fails at the end of a tampered stream with an INTEGRITY error that holds no key material', async () => {
    const secret = { key: KEY, nonce: Buffer.from(VECTORS[1]!.nonce, 'hex') };
    const ct = Buffer.from(VECTORS[1]!.ct, 'hex');
    ct[20]! ^= 1;
    const err = await run(new LayerDecryptStream(secret, Buffer.from(VECTORS[1]!.hmac, 'hex'), 'layer 0'), ct).catch((e: unknown) => e);
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
    const message = (err as Error).message;
    expect(message).toContain('HMAC verification failed');
    expect(message).not.toContain(KEY.toString('hex'));
    expect(message).not.toContain(KEY.toString('base64'));
  });

  it('is verified only once the whole ciphertext went through and its HMAC matched', async () => {
    const secret = { key: KEY, nonce: Buffer.from(VECTORS[1]!.nonce, 'hex') };
    const hmac = Buffer.from(VECTORS[1]!.hmac, 'hex');
    const ct = Buffer.from(VECTORS[1]!.ct, 'hex');
    const partial = new LayerDecryptStream(secret, hmac, 'layer 0');
    partial.write(ct.subarray(0, 40));
    // All but the last bytes decrypted (the plaintext a reader could act on), yet nothing verified.
    expect(partial.read()).toEqual(SEQ48.subarray(0, 40));
    expect(partial.verified).toBe(false);
    partial.destroy();
    const whole = new LayerDecryptStream(secret, hmac, 'layer 0');
    await run(whole, ct);
    expect(whole.verified).toBe(true);
    const forged = new LayerDecryptStream(secret, hmac, 'layer 0');
    await run(forged, Buffer.from(ct.map((b, i) => b ^ SEQ48[i]! ^ (i < 4 ? 0x41 : 0)))).catch(() => {});
    expect(forged.verified).toBe(false);
  });

  it('agrees with one-shot AES-CTR and HMAC on a layer large enough to be MACed on a worker thread, and catches a flipped bit there', async () => {
    const secret = { key: KEY, nonce: Buffer.from(VECTORS[2]!.nonce, 'hex') };
    const pt = randomBytes(3 * 1024 * 1024 + 5);
    const enc = new LayerEncryptStream(secret);
    const ct = await run(enc, pt, 256 * 1024);
    const cipher = createCipheriv('aes-256-ctr', KEY, secret.nonce);
    const expected = Buffer.concat([cipher.update(pt), cipher.final()]);
    expect(ct.equals(expected)).toBe(true);
    expect(enc.hmac()).toEqual(createHmac('sha256', KEY).update(expected).digest());
    expect((await run(new LayerDecryptStream(secret, enc.hmac(), 'layer 0'), ct, 100_000)).equals(pt)).toBe(true);
    ct[ct.length - 100]! ^= 1;
    const err = await run(new LayerDecryptStream(secret, enc.hmac(), 'layer 0'), ct, 100_000).catch((e: unknown) => e);
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
  });

  it('refuses keys and nonces of the wrong length', () => {
    expect(() => new LayerEncryptStream({ key: Buffer.alloc(16), nonce: Buffer.alloc(16) })).toThrow(/need 32 bytes/);
    expect(() => new LayerEncryptStream({ key: Buffer.alloc(32), nonce: Buffer.alloc(12) })).toThrow(/need 16 bytes/);
  });
});
