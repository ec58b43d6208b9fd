import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, loadPublicKey, type LoadedKey } from '../../../src/crypto/key-files.js';
import { jweRecipients, jweScheme, parseJwe } from '../../../src/crypto/schemes/jwe.js';
import { Keyring } from '../../../src/crypto/schemes/keyring.js';

/** The jwe scheme on loaded keys, as these tests use it: one item for all recipients, unwrapped with given keys. */
const wrapper = {
  wrap: async (payload: Buffer, keys: LoadedKey[]): Promise<Buffer> => (await jweRecipients(keys).wrap(payload))[0]!,
  unwrap: (item: Buffer, keys: LoadedKey[]): Promise<Buffer | undefined> => jweScheme.unwrap([item], new Keyring(keys), 'test layer'),
  describe: (item: Buffer) => jweScheme.describe(item),
};
const payload = Buffer.from('{"symkey":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MTI=","digest":"sha256:00","cipheroptions":{"nonce":"AAECAwQFBgcICQoLDA0ODw=="}}');

interface Pair {
  pub: LoadedKey;
  priv: LoadedKey;
}

async function pair(dir: string, name: string, kind: 'rsa' | 'P-256' | 'P-384' | 'P-521'): Promise<Pair> {
  const kp = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: kind });
  const pubFile = path.join(dir, `${name}.pub.pem`);
  const privFile = path.join(dir, `${name}.pem`);
  await writeFile(pubFile, kp.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(privFile, kp.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { pub: await loadPublicKey(pubFile), priv: await loadPrivateKey(privFile) };
}

function header(b64u: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(b64u, 'base64url').toString()) as Record<string, unknown>;
}

describe('jwe key wrapper', () => {
  let rsa: Pair, p256: Pair, p384: Pair, p521: Pair;
  beforeAll(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'imagegate-jwe-'));
    [rsa, p256, p384, p521] = await Promise.all([pair(dir, 'rsa', 'rsa'), pair(dir, 'p256', 'P-256'), pair(dir, 'p384', 'P-384'), pair(dir, 'p521', 'P-521')]);
  });

  it('writes flattened JSON with alg in the protected header for one RSA recipient, as go-jose does', async () => {
    const jwe = JSON.parse((await wrapper.wrap(payload, [rsa.pub])).toString()) as Record<string, string>;
    expect(Object.keys(jwe).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag']);
    expect(header(jwe.protected!)).toEqual({ alg: 'RSA-OAEP', enc: 'A256GCM' });
    expect(await wrapper.unwrap(Buffer.from(JSON.stringify(jwe)), [rsa.priv])).toEqual(payload);
  });

  for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
    it(`uses ECDH-ES+A256KW with the epk in the protected header for an EC ${curve} recipient`, async () => {
      const k = { 'P-256': p256, 'P-384': p384, 'P-521': p521 }[curve];
      const jwe = JSON.parse((await wrapper.wrap(payload, [k.pub])).toString()) as Record<string, string>;
      const h = header(jwe.protected!);
      expect(h.alg).toBe('ECDH-ES+A256KW');
      expect(h.enc).toBe('A256GCM');
      expect((h.epk as Record<string, string>).crv).toBe(curve);
      expect(await wrapper.unwrap(Buffer.from(JSON.stringify(jwe)), [k.priv])).toEqual(payload);
    });
  }

  it('writes epk coordinates at full curve length, which go-jose requires (P-521: 66 bytes, top byte often 0)', async () => {
    for (let i = 0; i < 16; i++) {
      const jwe = JSON.parse((await wrapper.wrap(payload, [p521.pub])).toString()) as Record<string, string>;
      const epk = header(jwe.protected!).epk as Record<string, string>;
      expect([Buffer.from(epk.x!, 'base64url').length, Buffer.from(epk.y!, 'base64url').length]).toEqual([66, 66]);
    }
  });

  it('writes general JSON for several recipients and each recipient unwraps', async () => {
    const item = await wrapper.wrap(payload, [rsa.pub, p256.pub]);
    const jwe = JSON.parse(item.toString()) as { protected: string; recipients: Array<{ header: { alg: string } }> };
    expect(header(jwe.protected)).toEqual({ enc: 'A256GCM' });
    expect(jwe.recipients.map((r) => r.header.alg)).toEqual(['RSA-OAEP', 'ECDH-ES+A256KW']);
    expect(await wrapper.unwrap(item, [rsa.priv])).toEqual(payload);
    expect(await wrapper.unwrap(item, [p256.priv])).toEqual(payload);
    expect(wrapper.describe(item)).toEqual([{ algorithm: 'RSA-OAEP' }, { algorithm: 'ECDH-ES+A256KW', detail: 'P-256' }]);
  });

  it("reads go-jose's general JSON with its extra top-level encrypted_key", async () => {
    const jwe = JSON.parse((await wrapper.wrap(payload, [rsa.pub, p384.pub])).toString()) as { recipients: Array<{ encrypted_key: string }> };
    const goJose = { ...jwe, encrypted_key: jwe.recipients[0]!.encrypted_key };
    expect(await wrapper.unwrap(Buffer.from(JSON.stringify(goJose)), [p384.priv])).toEqual(payload);
    expect(parseJwe(Buffer.from(JSON.stringify(goJose)))).not.toHaveProperty('encrypted_key');
  });

  it('returns undefined when no key is a recipient, and tries every key given', async () => {
    const item = await wrapper.wrap(payload, [p256.pub]);
    expect(await wrapper.unwrap(item, [rsa.priv, p384.priv])).toBeUndefined();
    expect(await wrapper.unwrap(item, [rsa.priv, p256.priv])).toEqual(payload);
  });

  it('refuses algorithms current ocicrypt does not allow (RSA1_5)', async () => {
    const jose = (await import('node-jose')).default;
    const key = await jose.JWK.asKey(rsa.pub.key.export({ format: 'jwk' }) as object);
    const legacy = await (jose.JWE.createEncrypt as unknown as (o: object, k: object) => { update(b: Buffer): { final(): Promise<object> } })(
      { format: 'flattened', contentAlg: 'A256GCM', fields: { alg: 'RSA1_5' } },
      { key, reference: false },
    )
      .update(payload)
      .final();
    expect(await wrapper.unwrap(Buffer.from(JSON.stringify(legacy)), [rsa.priv])).toBeUndefined();
  });

  it('rejects keys that cannot be jwe recipients', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'imagegate-jwe-'));
    const ed = generateKeyPairSync('ed25519');
    await writeFile(path.join(dir, 'ed.pub.pem'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
    const edKey = await loadPublicKey(path.join(dir, 'ed.pub.pem'));
    await expect(wrapper.wrap(payload, [edKey])).rejects.toThrow(/ed25519 key cannot be a jwe recipient/);
  });
});
