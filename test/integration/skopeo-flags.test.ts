/**
 * skopeo habits (issue 15): the flags skopeo users type work on imagegate with skopeo's syntax where they mean what
 * ours mean (`--encryption-key`, `--decryption-key`, `--encrypt-layer`, `--tls-verify`, `--src-creds`/`--dest-creds`,
 * `--authfile`), and are answered with "did you mean" where they do not. The encrypt case runs the very same argument
 * list through Debian's skopeo and through imagegate and compares what each wrote; the registry cases run against
 * docker-registry with htpasswd behind TLS.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { imagegate, layerContentDigests } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, skopeo, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';

const hasSkopeo = Boolean(requireTool('skopeo'));
const hasRegistry = Boolean(requireTool('docker-registry') && requireTool('openssl') && requireTool('htpasswd'));

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let key: KeyPairFiles;

beforeAll(async () => {
  const dir = await tempDir('imagegate-skopeo-flags-');
  cleanup = dir.cleanup;
  work = dir.path;
  key = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [21, 22, 23].map((seed) => ({ files: randomLayerFiles(seed, 2, 8192) })) }] });
}, 60_000);

afterAll(async () => {
  await cleanup?.();
});

/** Which layers of the layout's image are encrypted, bottom first. */
async function encryptedLayers(dir: string): Promise<boolean[]> {
  return (await readManifestFor(dir, 'v1')).layers.map((l) => l.mediaType.endsWith('+encrypted'));
}

describe.skipIf(!hasSkopeo)('one skopeo command line, two tools', () => {
  it('--encryption-key jwe:KEY --encrypt-layer -1 encrypts the same layer with skopeo and with imagegate', async () => {
    const flags = (dst: string) => ['--encryption-key', `jwe:${key.publicKeyPath}`, '--encrypt-layer', '-1', `oci:${src.dir}:v1`, `oci:${dst}:v1`];
    const bySkopeo = path.join(work, 'by-skopeo');
    const byImagegate = path.join(work, 'by-imagegate');
    await skopeo(['copy', ...flags(bySkopeo)]);
    const res = await imagegate(['encrypt', ...flags(byImagegate)]);
    expect(res.code, res.stderr).toBe(0);
    expect(await encryptedLayers(bySkopeo)).toEqual([false, false, true]);
    expect(await encryptedLayers(byImagegate)).toEqual([false, false, true]);
  });

  it("--encrypt-layer takes skopeo's comma list, and --decryption-key decrypts what either tool encrypted", async () => {
    const both = path.join(work, 'two-layers');
    const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${both}:v1`, '--encryption-key', `jwe:${key.publicKeyPath}`, '--encrypt-layer', '0,-1']);
    expect(res.code, res.stderr).toBe(0);
    expect(await encryptedLayers(both)).toEqual([true, false, true]);
    const plain = src.images[0]!.layers.map((l) => l.diffId);
    for (const encrypted of [both, path.join(work, 'by-skopeo')]) {
      const out = await testTempDir('skopeo-flags-dec-');
      const dec = await imagegate(['decrypt', `oci:${encrypted}:v1`, `oci:${out}:v1`, '--decryption-key', key.privateKeyPath]);
      expect(dec.code, dec.stderr).toBe(0);
      expect(await layerContentDigests(out, 'v1')).toEqual(plain);
    }
  });

  it('--decryption-key FILE:PASSWORD (a passphrase-protected key in skopeo) is answered, not mistaken for a file', async () => {
    const res = await imagegate(['decrypt', `oci:${path.join(work, 'by-skopeo')}:v1`, `oci:${path.join(work, 'never')}:v1`, '--decryption-key', `${key.privateKeyPath}:pass-15`]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(`--decryption-key ${key.privateKeyPath}:…: imagegate does not read passphrase-protected keys`);
    expect(res.stderr).not.toContain('pass-15');
  });
});

describe.skipIf(!hasRegistry)('registry flags with skopeo syntax, against a registry with htpasswd and TLS', () => {
  let reg: RegistryServer;
  const pushed = (): string => `docker://${reg.host}/skopeo/app:1`;

  beforeAll(async () => {
    reg = (await startRegistry({ tls: true, htpasswd: true }))!;
    const push = await imagegate(['encrypt', `oci:${src.dir}:v1`, pushed(), '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${reg.password}`, '--ca-cert', reg.caFile!, '-q']);
    if (push.code !== 0) throw new Error(push.stderr);
  }, 120_000);

  afterAll(async () => {
    await reg?.stop();
  });

  it('--src-creds USER:PASSWORD and --dest-creds USER:PASSWORD, each for its own side', async () => {
    const to = `docker://${reg.host}/skopeo/plain:1`;
    const creds = `${reg.username}:${reg.password}`;
    const res = await imagegate(['decrypt', pushed(), to, '--decryption-key', key.privateKeyPath, '--src-creds', creds, '--dest-creds', creds, '--ca-cert', reg.caFile!, '-q']);
    expect(res.code, res.stderr).toBe(0);
    // Only the source side given: the push is refused, so the flags are really per side.
    const half = await imagegate(['decrypt', pushed(), `docker://${reg.host}/skopeo/half:1`, '-k', key.privateKeyPath, '--src-creds', creds, '--ca-cert', reg.caFile!, '-q']);
    expect(half.code, half.stderr).toBe(7);
  });

  it('--authfile FILE reads a containers auth.json, as skopeo does', async () => {
    const authFile = path.join(work, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } } }));
    const res = await imagegate(['inspect', pushed(), '--authfile', authFile, '--ca-cert', reg.caFile!]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('encrypted');
  });

  it('--tls-verify (true) is what imagegate always does; --tls-verify=false is answered with what to use instead', async () => {
    const creds = ['--creds', `${reg.username}:${reg.password}`];
    const verified = await imagegate(['inspect', pushed(), '--tls-verify', '--ca-cert', reg.caFile!, ...creds]);
    expect(verified.code, verified.stderr).toBe(0);
    const off = await imagegate(['inspect', pushed(), '--tls-verify=false', ...creds]);
    expect(off.code, off.stderr).toBe(2);
    expect(off.stderr).toContain(
      "imagegate: --tls-verify=false: imagegate always verifies registry certificates; did you mean --ca-cert FILE (trust the CA that signed the registry's certificate), or --insecure / --insecure-registry HOST:PORT (plain HTTP to a registry on this machine)?",
    );
  });

  it('--dest-authfile and --cert-dir, which mean something else here, are answered with "did you mean"', async () => {
    const authFile = path.join(work, 'auth.json');
    const dest = await imagegate(['decrypt', pushed(), `oci:${path.join(work, 'never')}:v1`, '-k', key.privateKeyPath, '--dest-authfile', authFile]);
    expect(dest.code, dest.stderr).toBe(2);
    expect(dest.stderr).toContain("--dest-authfile is skopeo's; did you mean --authfile FILE?");
    const certDir = await imagegate(['inspect', pushed(), '--cert-dir', reg.certDir!]);
    expect(certDir.code, certDir.stderr).toBe(2);
    expect(certDir.stderr).toContain("--cert-dir is skopeo's; did you mean --ca-cert DIR/ca.crt?");
    // The hint is right: the CA file in that directory works.
    const hinted = await imagegate(['inspect', pushed(), '--ca-cert', path.join(reg.certDir!, 'ca.crt'), '--authfile', authFile]);
    expect(hinted.code, hinted.stderr).toBe(0);
    expect(await readFile(path.join(reg.certDir!, 'ca.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });
});
