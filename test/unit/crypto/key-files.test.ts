import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, loadPublicKey } from '../../../src/crypto/key-files.js';
import { isImagegateError } from '../../../src/errors.js';

describe('key files', () => {
  let dir: string;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'imagegate-keys-'));
    await writeFile(file('spki.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(file('pkcs1-pub.pem'), rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }));
    await writeFile(file('pkcs8.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(file('pkcs1.pem'), rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
    await writeFile(file('sec1.pem'), `-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n${ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string}`);
    await writeFile(file('spki.der'), rsa.publicKey.export({ type: 'spki', format: 'der' }));
    await writeFile(file('pkcs8.der'), ec.privateKey.export({ type: 'pkcs8', format: 'der' }));
    await writeFile(file('sec1.der'), ec.privateKey.export({ type: 'sec1', format: 'der' }));
    await writeFile(file('pub.jwk'), JSON.stringify({ ...ec.publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW', kid: 'team-a' }));
    await writeFile(file('priv.jwk'), JSON.stringify(ec.privateKey.export({ format: 'jwk' })));
    await writeFile(
      file('encrypted.pem'),
      rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }),
    );
    await writeFile(file('garbage.pem'), 'not a key at all');
  });

  it.each(['spki.pem', 'pkcs1-pub.pem', 'spki.der', 'pub.jwk', 'pkcs8.pem', 'sec1.pem'])('loads public key %s', async (name) => {
    const k = await loadPublicKey(file(name));
    expect(k.key.type).toBe('public');
  });

  it.each(['pkcs8.pem', 'pkcs1.pem', 'sec1.pem', 'pkcs8.der', 'sec1.der', 'priv.jwk'])('loads private key %s', async (name) => {
    const k = await loadPrivateKey(file(name));
    expect(k.key.type).toBe('private');
  });

  it('keeps a JWK alg and kid', async () => {
    const k = await loadPublicKey(file('pub.jwk'));
    expect(k.alg).toBe('ECDH-ES+A256KW');
    expect(k.kid).toBe('team-a');
  });

  it('explains passphrase-protected keys instead of failing obscurely', async () => {
    const err = await loadPrivateKey(file('encrypted.pem')).catch((e: unknown) => e);
    expect(isImagegateError(err, 'BAD_KEY')).toBe(true);
    expect((err as Error).message).toMatch(/passphrase-protected/);
  });

  it('names the file and the problem for unusable input', async () => {
    await expect(loadPrivateKey(file('garbage.pem'))).rejects.toThrow(/garbage\.pem is not a usable key/);
    await expect(loadPrivateKey(file('spki.pem'))).rejects.toThrow(/holds a public key/);
    await expect(loadPrivateKey(file('missing.pem'))).rejects.toThrow(/does not exist/);
  });
});
