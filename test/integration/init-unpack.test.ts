/**
 * `imagegate init --unpack` (pod model): the encrypted layers of an image decrypted, verified and unpacked into a
 * directory, byte for byte the files the image was built from; a tampered layer leaves the directory empty.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, type BuiltLayout, type LayerFile } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
import { tamperLayerConsistently } from '../support/tamper.js';
import { makeKeyPair, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let key: KeyPairFiles;
let enc: string;
const base: LayerFile[] = [{ path: 'etc/os-release', content: 'NAME=base\n' }];
const appFiles: LayerFile[] = [...randomLayerFiles(101, 3, 300 * 1024).map((f) => ({ ...f, path: `app/${f.path}` })), { path: 'app/run.sh', content: '#!/bin/sh\necho secret sauce\n', mode: 0o755 }];
const config: LayerFile[] = [{ path: 'etc/app/config.yaml', content: 'level: 3\n' }];

beforeAll(async () => {
  const dir = await tempDir('imagegate-unpack-');
  cleanup = dir.cleanup;
  work = dir.path;
  key = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [{ files: base }, { files: appFiles }, { files: config }] }] });
  enc = path.join(work, 'enc');
  // The plaintext base stays plain (pod model); the two application layers are encrypted.
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${enc}:v1`, '-r', `jwe:${key.publicKeyPath}`, '--layer', '1', '--layer', '2', '-q']);
});
afterAll(async () => cleanup?.());

async function files(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(p);
      else out[p] = (await readFile(path.join(root, p))).toString('base64');
    }
  };
  await walk('');
  return out;
}

describe('imagegate init --unpack', () => {
  it('unpacks only the encrypted layers, byte for byte, within the declared paths', async () => {
    const into = await testTempDir('unpacked-');
    const res = await imagegateOk(['init', '--unpack', into, '--paths', 'app,etc/app', '-k', key.privateKeyPath, `oci:${enc}:v1`, '--platform', 'linux/amd64']);
    expect(res.stderr).toMatch(/2 layer\(s\) verified and unpacked/);
    const expected: Record<string, string> = {};
    for (const f of [...appFiles, ...config]) expected[f.path] = Buffer.from(f.content).toString('base64');
    expect(await files(into)).toEqual(expected);
  });

  it('refuses layers that write outside the declared paths, leaving nothing', async () => {
    const into = await testTempDir('refused-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app', '-k', key.privateKeyPath, `oci:${enc}:v1`, '--platform', 'linux/amd64']);
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/"etc\/app\/config.yaml", outside the paths this image may write \(app\)/);
    expect(await readdir(into)).toEqual([]);
  });

  it('a tampered layer fails its HMAC and nothing appears', async () => {
    const tampered = path.join(work, 'tampered');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${tampered}:v1`, '-r', `jwe:${key.publicKeyPath}`, '--layer', '1', '--layer', '2', '-q']);
    await tamperLayerConsistently(tampered, 'v1', 2);
    const into = await testTempDir('tampered-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app,etc/app', '-k', key.privateKeyPath, `oci:${tampered}:v1`, '--platform', 'linux/amd64'], { env: { IMAGEGATE_DEBUG: '1' } });
    expect(res.code, res.stderr).toBe(5);
    expect(await readdir(into)).toEqual([]);
  });
});
