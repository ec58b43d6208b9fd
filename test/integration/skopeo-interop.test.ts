/**
 * Interop with the reference implementation in both directions: what imagegate encrypts, Debian's skopeo
 * (ocicrypt 1.0.3) decrypts, and what skopeo encrypts, imagegate decrypts. Layers are compared by their
 * uncompressed content (sha256 of the tar), which must equal the source image's diff_ids.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout, type Descriptor } from '../support/image-builder.js';
import { imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { makeKeyPair, requireTool, skopeo, tempDir, testTempDir, type KeyKind, type KeyPairFiles } from '../support/tools.js';

const skopeoBin = requireTool('skopeo');
const JWE = 'org.opencontainers.image.enc.keys.jwe';
const PUBOPTS = 'org.opencontainers.image.enc.pubopts';

function jweOf(layer: Descriptor): Record<string, unknown> {
  return JSON.parse(Buffer.from(layer.annotations?.[JWE] ?? '', 'base64').toString()) as Record<string, unknown>;
}

function encryptedFlags(layers: readonly Descriptor[]): boolean[] {
  return layers.map((l) => l.mediaType.endsWith('+encrypted'));
}

describe.skipIf(!skopeoBin)('interop with skopeo (ocicrypt 1.0.3)', () => {
  let work: string;
  let src: BuiltLayout;
  let srcRef: string;
  let diffIds: string[];
  const keys = {} as Record<KeyKind, KeyPairFiles>;
  let cleanup: (() => Promise<void>) | undefined;
  afterAll(async () => cleanup?.());

  beforeAll(async () => {
    const dir = await tempDir('imagegate-interop-');
    cleanup = dir.cleanup;
    work = dir.path;
    src = await buildOciLayout(path.join(work, 'src'), {
      tag: 'v1',
      images: [
        {
          layers: [
            { files: randomLayerFiles(11, 4, 200 * 1024) },
            { files: [{ path: 'etc/motd', content: 'middle layer\n' }] },
            { files: randomLayerFiles(12, 2, 3 * 1024 * 1024 + 17) },
          ],
        },
      ],
    });
    srcRef = `oci:${src.dir}:v1`;
    diffIds = src.images[0]!.layers.map((l) => l.diffId);
    for (const kind of ['rsa', 'ec-p256', 'ec-p384', 'ec-p521'] as const) keys[kind] = await makeKeyPair(path.join(work, 'keys'), kind);
  });

  describe('imagegate encrypts, skopeo decrypts', () => {
    it.each(['rsa', 'ec-p256', 'ec-p384', 'ec-p521'] as const)('one %s recipient', async (kind) => {
      const enc = await testTempDir('ig-enc-');
      const dec = await testTempDir('sk-dec-');
      await imagegateOk(['encrypt', srcRef, `oci:${enc}:v1`, '--recipient', `jwe:${keys[kind].publicKeyPath}`]);
      const m = await readManifestFor(enc, 'v1');
      expect(encryptedFlags(m.layers)).toEqual([true, true, true]);
      expect(m.config.digest).toBe(src.images[0]!.config.digest);
      for (const l of m.layers) {
        expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
        expect(l.annotations?.[PUBOPTS]).toBeDefined();
        expect(jweOf(l)).not.toHaveProperty('recipients'); // flattened, as go-jose writes one recipient
      }
      await skopeo(['copy', '--decryption-key', keys[kind].privateKeyPath, `oci:${enc}:v1`, `oci:${dec}:v1`]);
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });

    it('two recipients (RSA and EC): each key alone decrypts with skopeo', async () => {
      const enc = await testTempDir('ig-enc2-');
      await imagegateOk(['encrypt', srcRef, `oci:${enc}:v1`, '-r', `jwe:${keys.rsa.publicKeyPath}`, '-r', `jwe:${keys['ec-p256'].publicKeyPath}`]);
      const jwe = jweOf((await readManifestFor(enc, 'v1')).layers[0]!);
      expect((jwe.recipients as unknown[]).length).toBe(2);
      for (const k of [keys.rsa, keys['ec-p256']]) {
        const dec = await testTempDir('sk-dec2-');
        await skopeo(['copy', '--decryption-key', k.privateKeyPath, `oci:${enc}:v1`, `oci:${dec}:v1`]);
        expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
      }
      const wrong = await testTempDir('sk-wrong-');
      const r = await skopeo(['copy', '--decryption-key', keys['ec-p384'].privateKeyPath, `oci:${enc}:v1`, `oci:${wrong}:v1`], { check: false });
      expect(r.code).not.toBe(0);
    });

    it('a layer subset (--layer 0 --layer -1) leaves the middle layer plain and skopeo decrypts the rest', async () => {
      const enc = await testTempDir('ig-sub-');
      const dec = await testTempDir('sk-sub-');
      await imagegateOk(['encrypt', srcRef, `oci:${enc}:v1`, '-r', `jwe:${keys.rsa.publicKeyPath}`, '--layer', '0', '--layer', '-1']);
      const m = await readManifestFor(enc, 'v1');
      expect(encryptedFlags(m.layers)).toEqual([true, false, true]);
      expect(m.layers[1]!.digest).toBe(src.images[0]!.layers[1]!.digest);
      await skopeo(['copy', '--decryption-key', keys.rsa.privateKeyPath, `oci:${enc}:v1`, `oci:${dec}:v1`]);
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });

    it('oci-archive output decrypts with skopeo', async () => {
      const out = await testTempDir('ig-arch-');
      const dec = await testTempDir('sk-arch-');
      await imagegateOk(['encrypt', srcRef, `oci-archive:${out}/enc.tar:v1`, '-r', `jwe:${keys['ec-p256'].publicKeyPath}`]);
      await skopeo(['copy', '--decryption-key', keys['ec-p256'].privateKeyPath, `oci-archive:${out}/enc.tar:v1`, `oci:${dec}:v1`]);
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });
  });

  describe('skopeo encrypts, imagegate decrypts', () => {
    it.each(['rsa', 'ec-p256', 'ec-p384', 'ec-p521'] as const)('one %s recipient', async (kind) => {
      const enc = await testTempDir('sk-enc-');
      const dec = await testTempDir('ig-dec-');
      await skopeo(['copy', '--encryption-key', `jwe:${keys[kind].publicKeyPath}`, srcRef, `oci:${enc}:v1`]);
      const inspect = JSON.parse((await imagegateOk(['inspect', '--json', `oci:${enc}:v1`])).stdout) as {
        images: Array<{ layers: Array<{ encrypted: boolean; schemes: Array<{ scheme: string }> }> }>;
      };
      expect(inspect.images[0]!.layers.map((l) => [l.encrypted, l.schemes.map((s) => s.scheme)])).toEqual([
        [true, ['jwe']],
        [true, ['jwe']],
        [true, ['jwe']],
      ]);
      await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${dec}:v1`, '--key', keys[kind].privateKeyPath]);
      const m = await readManifestFor(dec, 'v1');
      for (const l of m.layers) {
        expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
        expect(Object.keys(l.annotations ?? {}).filter((k) => k.startsWith('org.opencontainers.image.enc'))).toEqual([]);
      }
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });

    it('two recipients in general JSON with go-jose\'s extra encrypted_key: each key alone decrypts', async () => {
      const enc = await testTempDir('sk-enc2-');
      await skopeo(['copy', '--encryption-key', `jwe:${keys.rsa.publicKeyPath}`, '--encryption-key', `jwe:${keys['ec-p521'].publicKeyPath}`, srcRef, `oci:${enc}:v1`]);
      const jwe = jweOf((await readManifestFor(enc, 'v1')).layers[0]!);
      expect(jwe).toHaveProperty('encrypted_key'); // the go-jose quirk this case exists for
      expect((jwe.recipients as unknown[]).length).toBe(2);
      for (const k of [keys.rsa, keys['ec-p521']]) {
        const dec = await testTempDir('ig-dec2-');
        await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${dec}:v1`, '--key', k.privateKeyPath]);
        expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
      }
    });

    it('a layer subset (--encrypt-layer -1): imagegate decrypts the top layer and keeps the others byte for byte', async () => {
      const enc = await testTempDir('sk-sub-');
      const dec = await testTempDir('ig-sub-');
      await skopeo(['copy', '--encryption-key', `jwe:${keys['ec-p256'].publicKeyPath}`, '--encrypt-layer', '-1', srcRef, `oci:${enc}:v1`]);
      expect(encryptedFlags((await readManifestFor(enc, 'v1')).layers)).toEqual([false, false, true]);
      await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${dec}:v1`, '--key', keys['ec-p256'].privateKeyPath]);
      const m = await readManifestFor(dec, 'v1');
      expect(m.layers.map((l) => l.digest)).toEqual(src.images[0]!.layers.map((l) => l.digest));
    });

    it('a key that is no recipient fails with exit code 4, names the recipients, and writes nothing', async () => {
      const enc = await testTempDir('sk-enc3-');
      const out = path.join(await testTempDir('ig-none-'), 'out');
      await skopeo(['copy', '--encryption-key', `jwe:${keys.rsa.publicKeyPath}`, srcRef, `oci:${enc}:v1`]);
      const r = await imagegate(['decrypt', `oci:${enc}:v1`, `oci:${out}:v1`, '--key', keys['ec-p256'].privateKeyPath]);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/layer 0 \(sha256:[0-9a-f]{64}\) cannot be decrypted with the given key\(s\) \(.*ec-p256\.pem\): it is encrypted for jwe \(1 recipient: RSA-OAEP\)/);
      expect(existsSync(out)).toBe(false);
    });
  });
});
