/**
 * `imagegate init --unpack` (pod model): the encrypted layers of an image decrypted, verified and unpacked into a
 * directory, byte for byte the files the image was built from; a tampered layer leaves the directory empty, and so
 * does a forged one that decrypts to a complete gzip stream plus padding (AES-CTR malleability; only the HMAC over
 * the whole layer can tell). It also runs as the webhook's init container does: non-root, every directory read-only
 * but the volumes mounted at the declared paths.
 */
import { chmod, cp, copyFile, link, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildOciLayout, makeLayerTar, randomLayerFiles, readLayerBlob, type BuiltLayout, type LayerFile } from '../support/image-builder.js';
import { CLI, imagegate, imagegateOk } from '../support/imagegate.js';
import { forgeLayerPlaintext, tamperLayerConsistently } from '../support/tamper.js';
import { findOnPath, makeKeyPair, run, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let key: KeyPairFiles;
let enc: string;
const base: LayerFile[] = [{ path: 'etc/os-release', content: 'NAME=base\n' }];
const appFiles: LayerFile[] = [...randomLayerFiles(101, 3, 300 * 1024).map((f) => ({ ...f, path: `app/${f.path}` })), { path: 'app/run.sh', content: '#!/bin/sh\necho secret sauce\n', mode: 0o755 }];
const config: LayerFile[] = [
  { path: 'etc/app/config.yaml', content: 'level: 3\n' },
  { path: 'etc/app/helper', content: '#!/bin/sh\necho setuid\n', mode: 0o4755 },
];

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

  it('a layer forged to decrypt to a gzip stream of the attacker\'s files plus padding fails its HMAC; nothing appears', async () => {
    // Before the fix, gunzip and tar ended at the forged stream's end, the HMAC was never checked, and
    // app/run.sh held the attacker's script, reported "verified".
    const forged = await forgedImage('forged', gzipSync(await makeLayerTar([{ path: 'app/run.sh', content: '#!/bin/sh\necho pwned\n', mode: 0o755 }])));
    const into = await testTempDir('forged-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app,etc/app', '-k', key.privateKeyPath, `oci:${forged}:v1`, '--platform', 'linux/amd64']);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/layer 1 .*HMAC verification failed/);
    expect(await readdir(into)).toEqual([]);
  });

  it('a layer forged into a gzip bomb fails its HMAC before its files are committed', async () => {
    const bomb = gzipSync(await makeLayerTar([{ path: 'app/bomb', content: Buffer.alloc(48 * 1024 * 1024) }]));
    const forged = await forgedImage('bomb', bomb);
    const into = await testTempDir('bomb-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app,etc/app', '-k', key.privateKeyPath, `oci:${forged}:v1`, '--platform', 'linux/amd64']);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/HMAC verification failed/);
    expect(await readdir(into)).toEqual([]);
  });

  it('refuses layers that decompress to more than --max-unpacked-size, leaving nothing', async () => {
    const into = await testTempDir('limit-');
    const res = await imagegate(['init', '--unpack', into, '--paths', 'app,etc/app', '--max-unpacked-size', '512K', '-k', key.privateKeyPath, `oci:${enc}:v1`, '--platform', 'linux/amd64']);
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/the layers unpack to more than 524288 bytes, the limit for one unpack; nothing was written/);
    expect(await readdir(into)).toEqual([]);
    const bad = await imagegate(['init', '--unpack', into, '--paths', 'app', '--max-unpacked-size', 'lots', '-k', key.privateKeyPath, `oci:${enc}:v1`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-unpacked-size "lots" is not a size/);
  });

  it('drops setuid, setgid and sticky bits unless --keep-special-bits', async () => {
    const into = await testTempDir('modes-');
    await imagegateOk(['init', '--unpack', into, '--paths', 'app,etc/app', '-k', key.privateKeyPath, `oci:${enc}:v1`, '--platform', 'linux/amd64']);
    expect((await lstat(path.join(into, 'etc/app/helper'))).mode & 0o7777).toBe(0o755);
    const kept = await testTempDir('modes-kept-');
    await imagegateOk(['init', '--unpack', kept, '--paths', 'app,etc/app', '--keep-special-bits', '-k', key.privateKeyPath, `oci:${enc}:v1`, '--platform', 'linux/amd64']);
    expect((await lstat(path.join(kept, 'etc/app/helper'))).mode & 0o7777).toBe(0o4755);
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

/** `enc` with its layer 1 (the application layer) forged to decrypt to `chosen` + zero padding; the HMAC kept. */
async function forgedImage(name: string, chosen: Buffer): Promise<string> {
  const dir = path.join(work, name);
  await cp(enc, dir, { recursive: true });
  const known = await readLayerBlob(src.dir, src.images[0]!.layers[1]!.digest);
  await forgeLayerPlaintext(dir, 'v1', 1, known, chosen);
  return dir;
}

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0 && findOnPath('setpriv') !== undefined;
if (!asRoot && process.env.CI === 'true') throw new Error('init-unpack.test.ts runs the init container as another user with setpriv, which needs root (CI runs as root)');

/**
 * The pod model's init container as the kubelet runs it: a non-root user, a read-only root filesystem (here: the
 * unpack root and every directory above the volumes root-owned and 0555), and one volume per declared path mounted
 * at UNPACK_ROOT/PATH (here: a tmpfs owned by that user, when this machine lets us mount; else a directory it owns).
 * Before the fix this failed with EACCES creating the staging directory in the unpack root, and as root with EBUSY
 * renaming onto the mount point.
 */
describe.skipIf(!asRoot)('imagegate init --unpack as the webhook runs it (non-root, read-only root, a volume per path)', () => {
  async function podFixture(image: string): Promise<{ unpackRoot: string; volumes: string[]; run: (extra?: string[]) => ReturnType<typeof run>; mounted: boolean }> {
    const podDir = await tempDir('pod-');
    const pod = podDir.path;
    const mounts: string[] = [];
    // One hook, in this order: a mount point cannot be removed while mounted.
    onTestFinished(async () => {
      for (const m of mounts) await run('umount', [m]);
      await podDir.cleanup();
    });
    await chmod(pod, 0o755);
    // The user cannot reach this Node binary's directory; a link to it in the pod directory it can.
    const node = path.join(pod, 'node');
    await link(process.execPath, node).catch(() => copyFile(process.execPath, node));
    await chmod(node, 0o755);
    const imageDir = path.join(pod, 'image');
    await cp(image, imageDir, { recursive: true });
    const keyFile = path.join(pod, 'key.pem');
    await writeFile(keyFile, await readFile(key.privateKeyPath), { mode: 0o644 });
    await run('chmod', ['-R', 'a+rX', imageDir]);

    const unpackRoot = path.join(pod, 'unpack');
    const volumes = [path.join(unpackRoot, 'app'), path.join(unpackRoot, 'etc/app')];
    let mounted = true;
    for (const v of volumes) {
      await mkdir(v, { recursive: true });
      const m = await run('mount', ['-t', 'tmpfs', '-o', `size=16m,mode=0755,uid=${NOBODY},gid=${NOBODY}`, 'tmpfs', v]);
      if (m.code === 0) mounts.push(v);
      else {
        mounted = false;
        await run('chown', [`${NOBODY}:${NOBODY}`, v]);
      }
    }
    await chmod(path.join(unpackRoot, 'etc'), 0o555);
    await chmod(unpackRoot, 0o555);
    const args = ['init', '--unpack', unpackRoot, '--paths', 'app,etc/app', '-k', keyFile, `oci:${imageDir}:v1`, '--platform', 'linux/amd64'];
    return {
      unpackRoot,
      volumes,
      mounted,
      run: (extra = []) => run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', node, CLI, ...args, ...extra], { cwd: pod, env: { HOME: pod } }),
    };
  }

  it('unpacks into the volumes, moving entries into them, and leaves no staging behind', async () => {
    const pod = await podFixture(enc);
    const res = await pod.run();
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/2 layer\(s\) verified and unpacked/);
    const expected: Record<string, string> = {};
    for (const f of [...appFiles, ...config]) expected[f.path] = Buffer.from(f.content).toString('base64');
    expect(await files(pod.unpackRoot)).toEqual(expected);
    expect((await readdir(pod.volumes[0]!)).filter((n) => n.startsWith('.'))).toEqual([]);
    // Unpacked by a user who could have kept it, the setuid bit is dropped all the same.
    expect((await lstat(path.join(pod.unpackRoot, 'etc/app/helper'))).mode & 0o7777).toBe(0o755);
    expect((await lstat(path.join(pod.unpackRoot, 'etc/app/helper'))).uid).toBe(NOBODY);
    if (pod.mounted) {
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      for (const v of pod.volumes) expect(mounts).toContain(` ${v} `);
    }
    if (!pod.mounted) {
      // CI runs as root and can mount: there the EBUSY case (renaming onto a mount point) must be exercised.
      if (process.env.CI === 'true') throw new Error('init-unpack: could not mount tmpfs, so the EBUSY case of a volume mount point was not exercised');
      console.warn('init-unpack: could not mount tmpfs here; the volumes were plain directories (EBUSY not exercised)');
    }
  });

  it('a declared path without a volume fails with a message saying so, and the other volumes stay empty', async () => {
    const pod = await podFixture(enc);
    const res = await pod.run(['--paths', 'app,etc/app,srv']);
    expect(res.code, res.stderr).toBe(6);
    expect(res.stderr).toMatch(/cannot unpack "srv": .*\/unpack\/srv does not exist and .*\/unpack is not writable for it \(EACCES\)/);
    for (const v of pod.volumes) expect(await readdir(v)).toEqual([]);
  });

  it('a forged layer leaves every volume empty, staging included', async () => {
    const forged = await forgedImage('forged-pod', gzipSync(await makeLayerTar([{ path: 'app/run.sh', content: '#!/bin/sh\necho pwned\n', mode: 0o755 }])));
    const pod = await podFixture(forged);
    const res = await pod.run();
    expect(res.code, res.stderr).toBe(5);
    expect(res.stderr).toMatch(/HMAC verification failed/);
    for (const v of pod.volumes) expect(await readdir(v)).toEqual([]);
  });
});
