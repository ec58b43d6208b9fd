import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, loadPublicKey, type LoadedKey } from '../../../src/crypto/key-files.js';
import { jweRecipients, jweScheme } from '../../../src/crypto/schemes/jwe.js';
import { Keyring } from '../../../src/crypto/schemes/keyring.js';
import { isImagegateError } from '../../../src/errors.js';
import { decryptImage } from '../../../src/ops/decrypt.js';
import { encryptImage, type EncryptOptions } from '../../../src/ops/encrypt.js';
import { openDestination, withSource } from '../../../src/transport/transports.js';
import { buildOciLayout, randomLayerFiles, readBlobJson, readIndexJson, readManifestFor, resolveTag, type BuiltLayout } from '../../support/image-builder.js';
import { corruptBlobInPlace, replaceManifest, tamperLayerConsistently } from '../../support/tamper.js';
import { makeKeyPair, tempDir, testTempDir, type TempDir } from '../../support/tools.js';

/** The jwe scheme on loaded keys, as these tests use it: one item for all recipients, unwrapped with given keys. */
const wrapper = {
  wrap: async (payload: Buffer, keys: LoadedKey[]): Promise<Buffer> => (await jweRecipients(keys).wrap(payload))[0]!,
  unwrap: (item: Buffer, keys: LoadedKey[]): Promise<Buffer | undefined> => jweScheme.unwrap([item], new Keyring(keys), 'test layer'),
  describe: (item: Buffer) => jweScheme.describe(item),
};
const JWE_ANNOTATION = 'org.opencontainers.image.enc.keys.jwe';

const encrypt = (src: string, dst: string, recipients: LoadedKey[], extra: Partial<EncryptOptions> = {}) =>
  withSource(src, async (source) => encryptImage(source, await openDestination(dst), { recipients: [jweRecipients(recipients)], ...extra }));

const decrypt = (src: string, dst: string, keys: LoadedKey[]) =>
  withSource(src, async (source) => decryptImage(source, await openDestination(dst), { keyring: new Keyring(keys) }));

describe('encrypt and decrypt through OCI layouts', () => {
  let pub: LoadedKey;
  let priv: LoadedKey;
  let otherPriv: LoadedKey;
  let single: BuiltLayout;
  let multi: BuiltLayout;
  let docker: BuiltLayout;
  let work: TempDir | undefined;
  afterAll(async () => work?.cleanup());

  beforeAll(async () => {
    work = await tempDir('ops-');
    const dir = work.path;
    const k = await makeKeyPair(dir, 'ec-p256');
    const other = await makeKeyPair(dir, 'rsa');
    pub = await loadPublicKey(k.publicKeyPath);
    priv = await loadPrivateKey(k.privateKeyPath);
    otherPriv = await loadPrivateKey(other.privateKeyPath);
    const layers = [{ files: randomLayerFiles(1, 2, 70_000) }, { files: randomLayerFiles(2, 1, 5000), compression: 'none' as const }];
    single = await buildOciLayout(path.join(dir, 'single'), { tag: 'v1', images: [{ layers }] });
    multi = await buildOciLayout(path.join(dir, 'multi'), {
      tag: 'v1',
      images: [
        { platform: { os: 'linux', architecture: 'amd64' }, layers },
        { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ files: randomLayerFiles(3, 1, 9000) }] },
      ],
    });
    docker = await buildOciLayout(path.join(dir, 'docker'), { tag: 'v1', format: 'docker', images: [{ layers }] });
  });

  it('round-trips every layer byte for byte and never touches the config', async () => {
    const out = await testTempDir('rt-');
    const res = await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    expect(res.rewrittenLayers).toBe(2);
    const enc = await readManifestFor(`${out}/enc`, 'v1');
    expect(enc.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
      'application/vnd.oci.image.layer.v1.tar+encrypted',
    ]);
    expect(enc.layers.map((l) => l.size)).toEqual(single.images[0]!.layers.map((l) => l.size)); // CTR adds nothing
    expect(enc.config).toEqual(single.images[0]!.config);
    await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dec:v1`, [priv]);
    const dec = await readManifestFor(`${out}/dec`, 'v1');
    expect(dec.layers.map((l) => [l.mediaType, l.digest, l.annotations])).toEqual(
      single.images[0]!.layers.map((l) => [l.mediaType, l.digest, undefined]),
    );
  });

  it('converts a Docker schema 2 image to OCI when it encrypts it', async () => {
    const out = await testTempDir('docker-');
    await encrypt(`oci:${docker.dir}:v1`, `oci:${out}/enc:v1`, [pub], { layers: [0] });
    const m = await readManifestFor(`${out}/enc`, 'v1');
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.config.digest).toBe(docker.images[0]!.config.digest);
    // Layer 1 is an uncompressed Docker layer: not selected, but its type is mapped to OCI with the manifest.
    expect(m.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
      'application/vnd.oci.image.layer.v1.tar',
    ]);
  });

  it('encrypts only the selected platform and keeps the index whole', async () => {
    const out = await testTempDir('multi-');
    await encrypt(`oci:${multi.dir}:v1`, `oci:${out}/enc:v1`, [pub], { platforms: [{ os: 'linux', architecture: 'arm64' }] });
    const index = (await readBlobJson(`${out}/enc`, (await resolveTag(`${out}/enc`, 'v1')).digest)) as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    expect(index.manifests[0]!.digest).toBe(multi.images[0]!.manifest.digest);
    expect(index.manifests[1]!.digest).not.toBe(multi.images[1]!.manifest.digest);
    const arm = await readManifestFor(`${out}/enc`, 'v1', { os: 'linux', architecture: 'arm64' });
    expect(arm.layers.every((l) => l.mediaType.endsWith('+encrypted'))).toBe(true);
  });

  it('refuses to run when nothing would be encrypted', async () => {
    const out = await testTempDir('none-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    const err = await encrypt(`oci:${out}/enc:v1`, `oci:${out}/again:v1`, [pub]).catch((e: unknown) => e);
    expect(isImagegateError(err, 'USAGE')).toBe(true);
    expect(existsSync(`${out}/again`)).toBe(false);
  });

  it('fails a layer whose ciphertext was changed with a consistent manifest, and writes nothing', async () => {
    const out = await testTempDir('tamper-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    await tamperLayerConsistently(`${out}/enc`, 'v1', 0);
    const err = await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dec:v1`, [priv]).catch((e: unknown) => e);
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toMatch(/layer 0 \(sha256:[0-9a-f]{64}\): HMAC verification failed/);
    expect(existsSync(`${out}/dec`)).toBe(false);
    expect((await readdir(out)).filter((f) => f.includes('imagegate'))).toEqual([]); // no staging left behind
  });

  it('fails a blob that does not match its digest before decrypting it', async () => {
    const out = await testTempDir('corrupt-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    const layer = (await readManifestFor(`${out}/enc`, 'v1')).layers[1]!;
    await corruptBlobInPlace(`${out}/enc`, layer.digest);
    const err = await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dec:v1`, [priv]).catch((e: unknown) => e);
    expect(isImagegateError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(existsSync(`${out}/dec`)).toBe(false);
  });

  it('leaves an existing destination layout exactly as it was when decryption fails', async () => {
    const out = await testTempDir('existing-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dst:old`, [priv]);
    const indexBefore = await readIndexJson(`${out}/dst`);
    const blobsBefore = (await readdir(`${out}/dst/blobs/sha256`)).sort();
    await encrypt(`oci:${multi.dir}:v1`, `oci:${out}/enc2:v1`, [pub]);
    await tamperLayerConsistently(`${out}/enc`, 'v1', 1);
    await expect(decrypt(`oci:${out}/enc:v1`, `oci:${out}/dst:new`, [priv])).rejects.toThrow(/HMAC/);
    expect(await readIndexJson(`${out}/dst`)).toEqual(indexBefore);
    expect((await readdir(`${out}/dst/blobs/sha256`)).sort()).toEqual(blobsBefore);
  });

  it('names the layer and its recipients when no key fits', async () => {
    const out = await testTempDir('wrongkey-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    const err = await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dec:v1`, [otherPriv]).catch((e: unknown) => e);
    expect(isImagegateError(err, 'NO_MATCHING_KEY')).toBe(true);
    expect((err as Error).message).toMatch(/encrypted for jwe \(1 recipient: ECDH-ES\+A256KW P-256\)/);
    expect(existsSync(`${out}/dec`)).toBe(false);
  });

  it('reads several comma-separated wrapped items, as ocicrypt appends when recipients are added', async () => {
    const out = await testTempDir('items-');
    await encrypt(`oci:${single.dir}:v1`, `oci:${out}/enc:v1`, [pub]);
    // Add a second item for another recipient to every layer, as imgcrypt does when it adds a recipient.
    const otherPub = await loadPublicKey(path.join(work!.path, 'rsa.pub.pem'));
    const entry = await resolveTag(`${out}/enc`, 'v1');
    const manifest = (await readBlobJson(`${out}/enc`, entry.digest)) as { layers: Array<{ annotations: Record<string, string> }> };
    for (const layer of manifest.layers) {
      const [first] = layer.annotations[JWE_ANNOTATION]!.split(',');
      const opts = await wrapper.unwrap(Buffer.from(first!, 'base64'), [priv]);
      layer.annotations[JWE_ANNOTATION] += `,${(await wrapper.wrap(opts!, [otherPub])).toString('base64')}`;
    }
    await replaceManifest(`${out}/enc`, 'v1', manifest);
    await decrypt(`oci:${out}/enc:v1`, `oci:${out}/dec:v1`, [otherPriv]);
    expect((await readManifestFor(`${out}/dec`, 'v1')).layers.map((l) => l.digest)).toEqual(single.images[0]!.layers.map((l) => l.digest));
  });

  it('refuses to write an encrypted image to docker-archive before doing any work', async () => {
    const out = await testTempDir('da-');
    const err = await encrypt(`oci:${single.dir}:v1`, `docker-archive:${out}/x.tar:app:1`, [pub]).catch((e: unknown) => e);
    expect(isImagegateError(err, 'DESTINATION')).toBe(true);
    expect((err as Error).message).toMatch(/cannot carry the key annotations/);
    expect(await readdir(out)).toEqual([]);
  });
});
