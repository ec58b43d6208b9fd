/**
 * The CLI as users run it: the quick start, docker-archive in and out (with skopeo writing and reading those
 * archives), unpacking a decrypted image with umoci, and the exit codes scripts rely on.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { tamperLayerConsistently } from '../support/tamper.js';
import { makeKeyPair, requireTool, runOk, skopeo, tempDir, testTempDir, type KeyPairFiles, type TempDir } from '../support/tools.js';

const skopeoBin = requireTool('skopeo');
const umociBin = requireTool('umoci');

describe.skipIf(!skopeoBin || !umociBin)('imagegate CLI', () => {
  let work: TempDir;
  let src: BuiltLayout;
  let srcRef: string;
  let diffIds: string[];
  let rsa: KeyPairFiles;

  beforeAll(async () => {
    work = await tempDir('imagegate-cli-');
    src = await buildOciLayout(path.join(work.path, 'src'), {
      tag: 'v1',
      images: [
        {
          layers: [
            { files: [{ path: 'etc/motd', content: 'hello from the bottom layer\n' }, ...randomLayerFiles(5, 2, 100_000)] },
            { files: [{ path: 'app/secret.txt', content: 'top secret\n' }] },
          ],
        },
      ],
    });
    srcRef = `oci:${src.dir}:v1`;
    diffIds = src.images[0]!.layers.map((l) => l.diffId);
    rsa = await makeKeyPair(path.join(work.path, 'keys'), 'rsa');
  });
  afterAll(async () => work?.cleanup());

  it('runs the quick start, and skopeo decrypts the image it made', async () => {
    const dir = path.join(await testTempDir('demo-'), 'demo');
    const r = await imagegateOk(['demo', dir]);
    expect(r.stderr).toContain('OK: every decrypted layer is byte-identical to the original');
    expect(r.stdout).toMatch(/2 of 2 layer\(s\) encrypted/);
    const out = await testTempDir('demo-skopeo-');
    await skopeo(['copy', '--decryption-key', path.join(dir, 'bob.pem'), `oci:${dir}/encrypted:1.0`, `oci:${out}:1.0`]);
    expect(await layerContentDigests(out, '1.0')).toEqual(await layerContentDigests(`${dir}/sample`, '1.0'));
    expect((await imagegate(['demo', dir])).code).toBe(6); // refuses to clobber a non-empty directory
  });

  it('keygen writes keys skopeo accepts', async () => {
    const dir = await testTempDir('keygen-');
    await imagegateOk(['keygen', '--out', `${dir}/k`, '--type', 'ec', '--curve', 'P-384']);
    expect((statSync(`${dir}/k.pem`).mode & 0o777).toString(8)).toBe('600');
    await skopeo(['copy', '--encryption-key', `jwe:${dir}/k.pub.pem`, srcRef, `oci:${dir}/enc:v1`]);
    await skopeo(['copy', '--decryption-key', `${dir}/k.pem`, `oci:${dir}/enc:v1`, `oci:${dir}/dec:v1`]);
    expect(await layerContentDigests(`${dir}/dec`, 'v1')).toEqual(diffIds);
    expect((await imagegate(['keygen', '--out', `${dir}/k`])).code).toBe(6);
  });

  it('encrypts a docker-archive written by skopeo, and decrypts back into one skopeo reads', async () => {
    const dir = await testTempDir('docker-archive-');
    await skopeo(['copy', srcRef, `docker-archive:${dir}/saved.tar:example.com/app:v1`]);
    await imagegateOk(['encrypt', `docker-archive:${dir}/saved.tar:example.com/app:v1`, `oci:${dir}/enc:v1`, '-r', `jwe:${rsa.publicKeyPath}`]);
    const enc = await readManifestFor(`${dir}/enc`, 'v1');
    expect(enc.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+encrypted', 'application/vnd.oci.image.layer.v1.tar+encrypted']);
    await skopeo(['copy', '--decryption-key', rsa.privateKeyPath, `oci:${dir}/enc:v1`, `oci:${dir}/sk:v1`]);
    expect(await layerContentDigests(`${dir}/sk`, 'v1')).toEqual(diffIds);

    await imagegateOk(['decrypt', `oci:${dir}/enc:v1`, `docker-archive:${dir}/plain.tar:example.com/app:v2`, '-k', rsa.privateKeyPath]);
    await skopeo(['copy', `docker-archive:${dir}/plain.tar:example.com/app:v2`, `oci:${dir}/back:v2`]);
    expect(await layerContentDigests(`${dir}/back`, 'v2')).toEqual(diffIds);
  });

  it('produces a decrypted image umoci unpacks into the original files', async () => {
    const dir = await testTempDir('umoci-');
    await imagegateOk(['encrypt', srcRef, `oci:${dir}/enc:v1`, '-r', `jwe:${rsa.publicKeyPath}`]);
    await imagegateOk(['decrypt', `oci:${dir}/enc:v1`, `oci:${dir}/dec:v1`, '-k', rsa.privateKeyPath]);
    await runOk(umociBin!, ['unpack', '--rootless', '--image', `${dir}/dec:v1`, `${dir}/bundle`]);
    expect(await readFile(`${dir}/bundle/rootfs/app/secret.txt`, 'utf8')).toBe('top secret\n');
    expect(await readFile(`${dir}/bundle/rootfs/etc/motd`, 'utf8')).toBe('hello from the bottom layer\n');
  });

  it('inspect shows encrypted layers and their recipients without any key', async () => {
    const dir = await testTempDir('inspect-');
    await imagegateOk(['encrypt', srcRef, `oci:${dir}/enc:v1`, '-r', `jwe:${rsa.publicKeyPath}`, '--layer', '-1']);
    const text = (await imagegateOk(['inspect', `oci:${dir}/enc:v1`])).stdout;
    expect(text).toMatch(/1 of 2 layer\(s\) encrypted/);
    expect(text).toMatch(/ 0 {2}plain .*application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip\n/);
    expect(text).toMatch(/ 1 {2}encrypted .*\+gzip\+encrypted {2}jwe\[RSA-OAEP\]/);
  });

  describe('exit codes and messages', () => {
    it('2 for usage errors', async () => {
      const r = await imagegate(['encrypt', srcRef, 'oci:/tmp/never:v1']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('encrypt needs at least one recipient (--recipient jwe:PUBLIC_KEY.pem)');
      const bad = await imagegate(['encrypt', srcRef, 'docker:reg.example/app:1', '-r', `jwe:${rsa.publicKeyPath}`]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/a registry image is docker:\/\/HOST\/REPOSITORY:TAG, with two slashes/);
      const flag = await imagegate(['encrypt', srcRef, 'oci:/tmp/never:v1', '-r', `jwe:${rsa.publicKeyPath}`, '--jobs', '0']);
      expect(flag.code).toBe(2);
      expect(flag.stderr).toMatch(/--jobs "0" must be a whole number from 1 to 32/);
      expect((await imagegate(['encrypt', '--bogus'])).code).toBe(2);
    });

    it('3 for a missing image or tag', async () => {
      const r = await imagegate(['inspect', `oci:${src.dir}:nope`]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('has no image tagged "nope"; it has tags "v1"');
      expect((await imagegate(['inspect', 'oci:/does/not/exist'])).code).toBe(3);
    });

    it('4 for an unusable key file', async () => {
      const dir = await testTempDir('badkey-');
      await writeFile(`${dir}/k.pem`, 'nonsense');
      const r = await imagegate(['encrypt', srcRef, `oci:${dir}/o:v1`, '-r', `jwe:${dir}/k.pem`]);
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('k.pem is not a usable key');
    });

    it('5 for a tampered layer, with nothing written', async () => {
      const dir = await testTempDir('tamper-');
      await imagegateOk(['encrypt', srcRef, `oci:${dir}/enc:v1`, '-r', `jwe:${rsa.publicKeyPath}`]);
      await tamperLayerConsistently(`${dir}/enc`, 'v1', 0);
      const r = await imagegate(['decrypt', `oci:${dir}/enc:v1`, `oci:${dir}/dec:v1`, '-k', rsa.privateKeyPath]);
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/HMAC verification failed/);
      expect(r.stderr).not.toMatch(/symkey/);
      expect(existsSync(`${dir}/dec`)).toBe(false);
      // skopeo agrees the layer is bad
      const sk = await skopeo(['copy', '--decryption-key', rsa.privateKeyPath, `oci:${dir}/enc:v1`, `oci:${dir}/sk:v1`], { check: false });
      expect(sk.code).not.toBe(0);
    });

    it('6 when asked to write an encrypted image to docker-archive', async () => {
      const dir = await testTempDir('da-');
      const r = await imagegate(['encrypt', srcRef, `docker-archive:${dir}/x.tar`, '-r', `jwe:${rsa.publicKeyPath}`]);
      expect(r.code).toBe(6);
      expect(r.stderr).toContain('cannot carry the key annotations of encrypted layers');
      expect(existsSync(`${dir}/x.tar`)).toBe(false);
    });
  });
});
