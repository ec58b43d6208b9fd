/**
 * Every path that decrypts refuses a layer forged through AES-CTR's malleability: an attacker with registry write who
 * knows a layer's compressed plaintext XORs its ciphertext so it decrypts to a complete gzip stream of their own files
 * followed by zero padding, and keeps the published HMAC (they cannot compute a new one); the image is re-published
 * with consistent digests. Such a layer stops gunzip and tar early, so only the HMAC over the whole ciphertext tells.
 * `imagegate decrypt` to an OCI layout, an oci-archive and a registry (docker-registry) writes and pushes nothing:
 * no image, no tag, no decrypted blob. (`init --unpack`, the fourth path, is in init-unpack.test.ts.)
 */
import { createHash } from 'node:crypto';
import { cp, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, hasBlob, makeLayerTar, randomLayerFiles, readLayerBlob, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { forgeLayerPlaintext } from '../support/tamper.js';
import { makeKeyPair, requireTool, skopeo, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';

const ready = Boolean(requireTool('docker-registry') && requireTool('skopeo'));

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let key: KeyPairFiles;
let enc: string;
let forged: string;
/** The digest the forged layer would have once decrypted; it must be stored nowhere. */
let forgedDigest: string;
/** The attacker's layer: a gzip stream of their own file, much shorter than the layer it replaces. */
let evilLayer: Buffer;

beforeAll(async () => {
  const dir = await tempDir('imagegate-decrypt-integrity-');
  cleanup = dir.cleanup;
  work = dir.path;
  key = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: [{ path: 'etc/os-release', content: 'NAME=base\n' }] }, { files: [...randomLayerFiles(7, 2, 200 * 1024), { path: 'app/run.sh', content: '#!/bin/sh\necho real\n', mode: 0o755 }] }] }],
  });
  enc = path.join(work, 'enc');
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${enc}:v1`, '-r', `jwe:${key.publicKeyPath}`, '-q']);
  forged = path.join(work, 'forged');
  await cp(enc, forged, { recursive: true });
  evilLayer = gzipSync(await makeLayerTar([{ path: 'app/run.sh', content: '#!/bin/sh\necho pwned\n', mode: 0o755 }]));
  const known = await readLayerBlob(src.dir, src.images[0]!.layers[1]!.digest);
  ({ forgedPlaintextDigest: forgedDigest } = await forgeLayerPlaintext(forged, 'v1', 1, known, evilLayer));
});
afterAll(async () => cleanup?.());

function decrypt(from: string, to: string, extra: string[] = []): ReturnType<typeof imagegate> {
  return imagegate(['decrypt', from, to, '-k', key.privateKeyPath, ...extra]);
}

describe('imagegate decrypt of a layer forged into a gzip stream plus padding', () => {
  it('the forgery is consistent: digests and sizes check out, only the HMAC can tell', async () => {
    const manifest = await readManifestFor(forged, 'v1');
    const blob = await readLayerBlob(forged, manifest.layers[1]!.digest);
    expect(manifest.layers[1]!.size).toBe(blob.length);
    expect(`sha256:${createHash('sha256').update(blob).digest('hex')}`).toBe(manifest.layers[1]!.digest);
    expect(manifest.layers[1]!.annotations).toEqual((await readManifestFor(enc, 'v1')).layers[1]!.annotations);
    // The untampered image decrypts, so the refusals below are the forgery's doing.
    const out = await testTempDir('sound-');
    await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${out}:v1`, '-k', key.privateKeyPath]);
    expect(await layerContentDigests(out, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
  });

  it('to an OCI layout: exit 5 and no image, tag or decrypted blob written', async () => {
    const out = path.join(await testTempDir('layout-'), 'out');
    const res = await decrypt(`oci:${forged}:v1`, `oci:${out}:v1`);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/layer 1 \(sha256:[0-9a-f]+\): HMAC verification failed/);
    const left = await readdir(out).catch(() => [] as string[]);
    expect(left).not.toContain('index.json');
    if (left.includes('blobs')) expect(await hasBlob(out, forgedDigest)).toBe(false);
  });

  it('into an existing OCI layout: exit 5, its other image untouched and no tag added', async () => {
    const out = await testTempDir('existing-');
    await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${out}:sound`, '-k', key.privateKeyPath]);
    const before = await readFile(path.join(out, 'index.json'), 'utf8');
    const res = await decrypt(`oci:${forged}:v1`, `oci:${out}:forged`);
    expect(res.code, res.stderr).toBe(5);
    expect(await readFile(path.join(out, 'index.json'), 'utf8')).toBe(before);
    expect(await hasBlob(out, forgedDigest)).toBe(false);
  });

  it('to an oci-archive: exit 5 and no archive', async () => {
    const dir = await testTempDir('archive-');
    const res = await decrypt(`oci:${forged}:v1`, `oci-archive:${path.join(dir, 'out.tar')}:v1`);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/HMAC verification failed/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe.skipIf(!ready)('imagegate decrypt of a forged layer to a registry (docker-registry)', () => {
  let reg: RegistryServer;
  beforeAll(async () => {
    reg = (await startRegistry())!;
  });
  afterAll(async () => reg?.stop());

  it('exits 5 and pushes no manifest, no tag and not the forged layer', async () => {
    const res = await decrypt(`oci:${forged}:v1`, `docker://${reg.host}/team/forged:1`, ['--insecure']);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/HMAC verification failed/);
    expect((await fetch(`${reg.url}/v2/team/forged/manifests/1`, { method: 'HEAD' })).status).toBe(404);
    const tags = await fetch(`${reg.url}/v2/team/forged/tags/list`);
    const listed = tags.status === 200 ? ((await tags.json()) as { tags: string[] | null }).tags : null;
    expect(listed ?? []).toEqual([]);
    expect((await fetch(`${reg.url}/v2/team/forged/blobs/${forgedDigest}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('and the source image in the registry, pulled from there, is refused by init --unpack with nothing unpacked', async () => {
    // skopeo moves the encrypted blobs as they are, as an attacker's push would.
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${forged}:v1`, `docker://${reg.host}/team/forged-src:1`]);
    const into = await testTempDir('unpack-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app,etc', '-k', key.privateKeyPath, `docker://${reg.host}/team/forged-src:1`, '--insecure', '--platform', 'linux/amd64']);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/layer 1 \(sha256:[0-9a-f]+\): HMAC verification failed/);
    expect(await readdir(into)).toEqual([]);
  });
});
