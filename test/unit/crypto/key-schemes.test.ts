import { generateKeyPairSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import type { LoadedKey } from '../../../src/crypto/key-files.js';
import { prepareLayerDecryption, prepareLayerEncryption, unwrapLayerOptions } from '../../../src/crypto/layer-crypto.js';
import { layerKeyReferences, manifestEncryption } from '../../../src/crypto/layer-recipients.js';
import { prepareRecipients } from '../../../src/crypto/recipients.js';
import { jweRecipients } from '../../../src/crypto/schemes/jwe.js';
import { Keyring, keyringSlot } from '../../../src/crypto/schemes/keyring.js';
import { KEY_SCHEMES, keyAnnotations, schemeForRecipient } from '../../../src/crypto/schemes/registry.js';
import { encodeVaultItem } from '../../../src/crypto/schemes/vault-item.js';
import { TRANSIT_SESSION, vaultTransitScheme } from '../../../src/crypto/schemes/vault-transit.js';
import type { VaultLayerKeys } from '../../../src/crypto/schemes/vault-layer-keys.js';
import type { Descriptor } from '../../../src/image/descriptor.js';
import { parseMinVersions } from '../../../src/ops/audit.js';

/** Runs bytes through a cipher to its end, as a copy would, so its HMAC is known. */
async function runThrough(cipher: Duplex, bytes: Buffer): Promise<void> {
  cipher.resume();
  cipher.end(bytes);
  await finished(cipher);
}

const digest = `sha256:${'a'.repeat(64)}` as const;
const plainLayer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 10 };

function keyPair(): { pub: LoadedKey; priv: LoadedKey } {
  const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pub: { key: kp.publicKey, source: 'test.pub.pem' }, priv: { key: kp.privateKey, source: 'test.pem' } };
}

const vaultItem = (over: Partial<{ key: string; version: number; binding: string }> = {}): Buffer =>
  encodeVaultItem({ v: 1, mount: 'transit', key: over.key ?? 'app', version: over.version ?? 2, ciphertext: `vault:v${over.version ?? 2}:AAAA`, binding: over.binding ?? 'reg.example/team/app' });

describe('the key-scheme registration', () => {
  it('has jwe and the Vault scheme, each with its own annotation', () => {
    expect(KEY_SCHEMES.map((s) => [s.name, s.annotation])).toEqual([
      ['jwe', 'org.opencontainers.image.enc.keys.jwe'],
      ['provider.imagegate', 'org.opencontainers.image.enc.keys.provider.imagegate'],
    ]);
  });

  it('finds the scheme for each recipient prefix, and none for other schemes', () => {
    expect(schemeForRecipient('jwe:./k.pem')).toMatchObject({ scheme: { name: 'jwe' }, value: './k.pem' });
    expect(schemeForRecipient('vault:transit/app')).toMatchObject({ scheme: { name: 'provider.imagegate' }, value: 'transit/app' });
    expect(schemeForRecipient('provider:imagegate:transit/app')).toMatchObject({ scheme: { name: 'provider.imagegate' }, value: 'transit/app' });
    expect(schemeForRecipient('pgp:alice@example.com')).toBeUndefined();
    expect(schemeForRecipient('jwe')).toBeUndefined();
  });

  it('lists key annotations in the layer order, unknown schemes included without a scheme', () => {
    const found = keyAnnotations({ 'org.opencontainers.image.enc.keys.pgp': 'x', 'org.opencontainers.image.enc.keys.jwe': 'y', other: 'z' });
    expect(found.map((a) => [a.name, a.scheme?.name])).toEqual([
      ['pgp', undefined],
      ['jwe', 'jwe'],
    ]);
  });
});

describe('layer crypto through the schemes', () => {
  it('encrypts for a jwe recipient and decrypts with its private key; the layer key is wiped after', async () => {
    const { pub, priv } = keyPair();
    const enc = await prepareLayerEncryption(plainLayer, [jweRecipients([pub])]);
    await runThrough(enc.createCipher(), Buffer.from('hello'));
    const encrypted = { ...enc.encryptedDescriptor(), digest, size: 10 } as Descriptor;
    expect(Object.keys(encrypted.annotations ?? {}).sort()).toEqual(['org.opencontainers.image.enc.keys.jwe', 'org.opencontainers.image.enc.pubopts']);
    const dec = await prepareLayerDecryption(encrypted, new Keyring([priv]), 'layer 0');
    expect(dec.decryptedDescriptor()).toEqual({ mediaType: plainLayer.mediaType });
  });

  it('names the schemes, recipients and every remedy when nothing on the keyring fits', async () => {
    const { pub } = keyPair();
    const other = keyPair();
    const enc = await prepareLayerEncryption(plainLayer, [jweRecipients([pub])]);
    await runThrough(enc.createCipher(), Buffer.alloc(0));
    const annotations = {
      ...enc.encryptedDescriptor().annotations,
      'org.opencontainers.image.enc.keys.provider.imagegate': vaultItem().toString('base64'),
      'org.opencontainers.image.enc.keys.pgp': 'AAAA',
    };
    const failure = unwrapLayerOptions('layer 0', annotations, new Keyring([other.priv]));
    await expect(failure).rejects.toMatchObject({ code: 'NO_MATCHING_KEY', fields: { layer: 'layer 0' } });
    const message = ((await failure.catch((e: Error) => e)) as Error).message;
    expect(message).toContain('(test.pem): it is encrypted for jwe (1 recipient: ECDH-ES+A256KW P-256), provider.imagegate (1 recipient: vault-transit transit/keys/app v2 bound to reg.example/team/app), pgp.');
    expect(message).toContain('This build cannot unwrap pgp.');
    expect(message).toContain('Give the private key of one of its recipients with --key.');
    expect(message).toContain('pass --vault');
  });

  it('asks the Vault scheme only when the keyring has a Transit session, and Vault’s refusal is the error', async () => {
    const annotations = { 'org.opencontainers.image.enc.keys.provider.imagegate': vaultItem().toString('base64') };
    const refusing = { unwrap: async () => Promise.reject(Object.assign(new Error('permission denied'), { code: 'AUTH' })) } as unknown as VaultLayerKeys;
    await expect(unwrapLayerOptions('layer 0', annotations, new Keyring())).rejects.toMatchObject({ code: 'NO_MATCHING_KEY' });
    await expect(unwrapLayerOptions('layer 0', annotations, new Keyring().provide(TRANSIT_SESSION, async () => refusing))).rejects.toThrow('permission denied');
  });
});

describe('keys held by a key service', () => {
  it('are read from the Vault scheme’s items, with the ciphertext’s version, and not from jwe', () => {
    const annotations = {
      'org.opencontainers.image.enc.keys.provider.imagegate': `${vaultItem().toString('base64')},${vaultItem({ key: 'old', version: 1 }).toString('base64')},%%%`,
      'org.opencontainers.image.enc.keys.jwe': 'e30=',
    };
    expect(layerKeyReferences(annotations)).toEqual([
      { key: 'transit/keys/app', version: 2, binding: 'reg.example/team/app' },
      { key: 'transit/keys/old', version: 1, binding: 'reg.example/team/app' },
    ]);
  });

  it('make the manifest facts policy reads: offline schemes, service keys, layers without one', () => {
    const enc = 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted';
    const facts = manifestEncryption([
      { mediaType: enc, digest, size: 1, annotations: { 'org.opencontainers.image.enc.keys.provider.imagegate': vaultItem().toString('base64') } },
      { mediaType: enc, digest, size: 1, annotations: { 'org.opencontainers.image.enc.keys.jwe': 'e30=' } },
      plainLayer,
    ]);
    expect(facts).toEqual({
      layers: 3,
      encryptedLayers: 2,
      schemes: ['jwe', 'provider.imagegate'],
      offlineSchemes: ['jwe'],
      serviceKeys: [{ key: 'transit/keys/app', version: 2, binding: 'reg.example/team/app' }],
      layersWithoutServiceKey: 1,
    });
  });
});

describe('Keyring', () => {
  it('opens a session once, on first use, and shares it with copies for other repositories', async () => {
    const slot = keyringSlot<{ n: number }>('test.scheme');
    let opened = 0;
    const keyring = new Keyring([], 'reg/a').provide(slot, async () => ({ n: ++opened }));
    expect(opened).toBe(0);
    const other = keyring.forRepository('reg/b');
    expect(await other.session(slot)).toEqual({ n: 1 });
    expect(await keyring.session(slot)).toEqual({ n: 1 });
    expect([keyring.repository, other.repository]).toEqual(['reg/a', 'reg/b']);
    expect(await new Keyring().session(slot)).toBeUndefined();
  });

  it('gives only its sessions to what must prove access through a key service', () => {
    const keyring = new Keyring([keyPair().priv], 'reg/a').provide(TRANSIT_SESSION, async () => ({}) as VaultLayerKeys);
    const services = keyring.sessionsOnly();
    expect(services.privateKeys).toEqual([]);
    expect(services.has(TRANSIT_SESSION)).toBe(true);
    expect(services.repository).toBe('reg/a');
  });

  it('lets the Vault scheme refuse to wrap without a session or a repository to bind to', async () => {
    await expect(vaultTransitScheme.recipients(['transit/app'], { binding: undefined, keyring: new Keyring() })).rejects.toThrow(/bind each layer key to the repository/);
    await expect(vaultTransitScheme.recipients(['transit/app'], { binding: 'reg/a', keyring: new Keyring() })).rejects.toThrow(/needs Vault: set VAULT_ADDR/);
  });
});

describe('--recipient refusals', () => {
  it('says which of ocicrypt’s other schemes a recipient was (a key problem), or that the flag is malformed', async () => {
    const context = { binding: undefined, keyring: new Keyring() };
    await expect(prepareRecipients(['pgp:alice@example.com'], context)).rejects.toMatchObject({ code: 'BAD_KEY', message: expect.stringContaining('pgp recipients are not supported') });
    await expect(prepareRecipients(['provider:other:x'], context)).rejects.toMatchObject({ code: 'BAD_KEY', message: expect.stringContaining('the only key provider built in is imagegate') });
    await expect(prepareRecipients(['jew:./k.pem'], context)).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('unknown scheme "jew"; use jwe:PUBLIC_KEY or vault:[MOUNT/]KEY') });
    await expect(prepareRecipients(['vault:'], context)).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('must be SCHEME:VALUE') });
  });
});

describe('audit --min-version', () => {
  it('keys a minimum by the one Transit key spelling, whichever form was typed', () => {
    expect([...parseMinVersions(['transit/app=3', 'team/transit/keys/db=2', '4'])]).toEqual([
      ['transit/keys/app', 3],
      ['team/transit/keys/db', 2],
      ['*', 4],
    ]);
  });
});
