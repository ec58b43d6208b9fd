/**
 * Proves the test harness against the reference implementation alone, with no imagegate code involved: layouts
 * built by image-builder are valid for skopeo, skopeo's ocicrypt output has the shape the fact sheet
 * (reference/ocicrypt.md) describes, and decryption gives back the original bytes. If this file fails, the fixtures
 * or the machine are wrong, not imagegate.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildOciLayout,
  randomLayerFiles,
  readIndexJson,
  readLayerBlob,
  readManifestFor,
  type BuiltLayout,
  type Descriptor,
} from '../support/image-builder.js';
import { makeKeyPair, requireTool, skopeo, tempDir, type KeyPairFiles, type TempDir } from '../support/tools.js';

const skopeoBin = requireTool('skopeo');

const ENC_KEYS_JWE = 'org.opencontainers.image.enc.keys.jwe';
const ENC_PUBOPTS = 'org.opencontainers.image.enc.pubopts';
const TAG = 'v1';

/** The JWE JSON serializations go-jose writes: flattened for one recipient, general for several. */
interface JweJson {
  protected: string;
  encrypted_key?: string;
  recipients?: Array<{ header: Record<string, unknown>; encrypted_key: string }>;
  iv: string;
  ciphertext: string;
  tag: string;
}

function decodeJwe(layer: Descriptor): JweJson {
  const annotation = layer.annotations?.[ENC_KEYS_JWE];
  if (annotation === undefined) throw new Error(`layer ${layer.digest} has no ${ENC_KEYS_JWE}`);
  return JSON.parse(Buffer.from(annotation, 'base64').toString('utf8')) as JweJson;
}

function protectedHeader(jwe: JweJson): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function layerSummary(layers: readonly Descriptor[]) {
  return layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size }));
}

const ociRef = (dir: string) => `oci:${dir}:${TAG}`;

describe.skipIf(!skopeoBin)('skopeo baseline (reference ocicrypt only)', () => {
  let work: TempDir;
  let srcDir: string;
  let src: BuiltLayout;
  let keys: Record<'rsa' | 'ec-p256', KeyPairFiles>;

  beforeAll(async () => {
    work = await tempDir('skopeo-baseline-');
    srcDir = path.join(work.path, 'src');
    src = await buildOciLayout(srcDir, {
      tag: TAG,
      images: [
        {
          layers: [
            { files: randomLayerFiles(1, 3, 64 * 1024) },
            { files: [{ path: 'etc/motd', content: 'hello from layer 2\n' }, ...randomLayerFiles(2, 1, 1000)] },
          ],
        },
      ],
    });
    const keyDir = path.join(work.path, 'keys');
    keys = { rsa: await makeKeyPair(keyDir, 'rsa'), 'ec-p256': await makeKeyPair(keyDir, 'ec-p256') };
  });

  afterAll(async () => {
    await work?.cleanup();
  });

  it('reads the layout image-builder wrote, byte for byte', async () => {
    const { stdout } = await skopeo(['inspect', '--raw', ociRef(srcDir)]);
    const image = src.images[0];
    expect(image).toBeDefined();
    expect(`sha256:${createHash('sha256').update(stdout).digest('hex')}`).toBe(image?.manifest.digest);
  });

  it.each([
    ['rsa', 'RSA-OAEP'],
    ['ec-p256', 'ECDH-ES+A256KW'],
  ] as const)('encrypts every layer for one %s recipient and decrypts back to the same blobs', async (kind, alg) => {
    const encDir = path.join(work.path, `enc-${kind}`);
    const decDir = path.join(work.path, `dec-${kind}`);
    const original = await readManifestFor(srcDir, TAG);

    await skopeo(['copy', '--encryption-key', `jwe:${keys[kind].publicKeyPath}`, ociRef(srcDir), ociRef(encDir)]);
    const encrypted = await readManifestFor(encDir, TAG);
    // The config is not encrypted and not rewritten.
    expect(encrypted.config.digest).toBe(original.config.digest);
    expect(encrypted.layers).toHaveLength(original.layers.length);
    encrypted.layers.forEach((layer, i) => {
      const before = original.layers[i];
      expect(layer.mediaType).toBe(`${before?.mediaType}+encrypted`);
      expect(layer.digest).not.toBe(before?.digest);
      expect(Object.keys(layer.annotations ?? {}).sort()).toEqual([ENC_KEYS_JWE, ENC_PUBOPTS]);
      const pubopts = JSON.parse(Buffer.from(layer.annotations?.[ENC_PUBOPTS] ?? '', 'base64').toString('utf8')) as {
        cipher: string;
        hmac: string;
      };
      expect(pubopts.cipher).toBe('AES_256_CTR_HMAC_SHA256');
      expect(Buffer.from(pubopts.hmac, 'base64')).toHaveLength(32);
      // One recipient: flattened JSON, with the key-encryption algorithm in the protected header.
      const jwe = decodeJwe(layer);
      expect(jwe.recipients).toBeUndefined();
      expect(typeof jwe.encrypted_key).toBe('string');
      expect(protectedHeader(jwe)).toMatchObject({ alg, enc: 'A256GCM' });
    });

    await skopeo(['copy', '--decryption-key', keys[kind].privateKeyPath, ociRef(encDir), ociRef(decDir)]);
    const decrypted = await readManifestFor(decDir, TAG);
    expect(layerSummary(decrypted.layers)).toEqual(layerSummary(original.layers));
    for (const layer of original.layers) {
      expect((await readLayerBlob(decDir, layer.digest)).equals(await readLayerBlob(srcDir, layer.digest))).toBe(true);
    }
  });

  it('refuses to decrypt with a private key that is not a recipient', async () => {
    const encDir = path.join(work.path, 'enc-wrong-key');
    await skopeo(['copy', '--encryption-key', `jwe:${keys.rsa.publicKeyPath}`, ociRef(srcDir), ociRef(encDir)]);
    const decDir = path.join(work.path, 'dec-wrong-key');
    const result = await skopeo(
      ['copy', '--decryption-key', keys['ec-p256'].privateKeyPath, ociRef(encDir), ociRef(decDir)],
      { check: false },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('no suitable key unwrapper found or none of the private keys could be used');
  });

  it('with --encrypt-layer -1 and two recipients encrypts only the top layer, as a general JSON JWE', async () => {
    const encDir = path.join(work.path, 'enc-two');
    const original = await readManifestFor(srcDir, TAG);
    await skopeo([
      'copy',
      '--encrypt-layer',
      '-1',
      '--encryption-key',
      `jwe:${keys.rsa.publicKeyPath}`,
      '--encryption-key',
      `jwe:${keys['ec-p256'].publicKeyPath}`,
      ociRef(srcDir),
      ociRef(encDir),
    ]);
    const encrypted = await readManifestFor(encDir, TAG);
    const [bottom, top] = encrypted.layers;
    expect(layerSummary(bottom ? [bottom] : [])).toEqual(layerSummary(original.layers.slice(0, 1)));
    expect(bottom?.annotations).toBeUndefined();
    expect(top?.mediaType).toBe(`${original.layers[1]?.mediaType}+encrypted`);

    const jwe = decodeJwe(top as Descriptor);
    // General JSON: only `enc` is shared; each recipient carries its own `alg` (and `epk`), in command-line order.
    expect(protectedHeader(jwe)).toEqual({ enc: 'A256GCM' });
    expect(jwe.recipients?.map((r) => r.header.alg)).toEqual(['RSA-OAEP', 'ECDH-ES+A256KW']);
    expect(jwe.recipients?.[1]?.header.epk).toMatchObject({ kty: 'EC', crv: 'P-256' });
    // go-jose quirk (not RFC 7516): a top-level encrypted_key copying the first recipient's.
    expect(jwe.encrypted_key).toBe(jwe.recipients?.[0]?.encrypted_key);

    // Either recipient alone can decrypt.
    for (const kind of ['rsa', 'ec-p256'] as const) {
      const decDir = path.join(work.path, `dec-two-${kind}`);
      await skopeo(['copy', '--decryption-key', keys[kind].privateKeyPath, ociRef(encDir), ociRef(decDir)]);
      const decrypted = await readManifestFor(decDir, TAG);
      expect(layerSummary(decrypted.layers)).toEqual(layerSummary(original.layers));
      const topDigest = original.layers[1]?.digest ?? '';
      expect((await readLayerBlob(decDir, topDigest)).equals(await readLayerBlob(srcDir, topDigest))).toBe(true);
    }
  });

  it('reads a multi-platform layout (linux/amd64 + linux/arm64) as an image index', async () => {
    const dir = path.join(work.path, 'multi');
    const built = await buildOciLayout(dir, {
      tag: TAG,
      images: [
        { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ files: randomLayerFiles(10, 1, 4096) }] },
        { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ files: randomLayerFiles(11, 1, 4096) }] },
      ],
    });
    const entry = (await readIndexJson(dir)).manifests[0];
    expect(entry?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(entry?.digest).toBe(built.index?.digest);

    const { stdout } = await skopeo(['inspect', '--raw', ociRef(dir)]);
    expect(`sha256:${createHash('sha256').update(stdout).digest('hex')}`).toBe(built.index?.digest);
    const index = JSON.parse(stdout) as { manifests: Descriptor[] };
    expect(index.manifests.map((m) => [m.platform?.architecture, m.digest])).toEqual(
      built.images.map((img) => [img.platform.architecture, img.manifest.digest]),
    );

    // skopeo resolves the index to the requested platform's image.
    const { stdout: config } = await skopeo(['--override-arch', 'arm64', 'inspect', '--config', ociRef(dir)]);
    expect(JSON.parse(config)).toMatchObject({ os: 'linux', architecture: 'arm64' });
  });
});
