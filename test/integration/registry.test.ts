/**
 * docker:// against Debian's docker-registry 2.8.2: push and pull over plain HTTP, TLS with htpasswd Basic auth,
 * and the Bearer token flow; interop with skopeo in both directions through the registry; a multi-platform index;
 * failures (wrong password, unknown repository, untrusted CA) and a registry killed in the middle of a push.
 * Layers are compared by their uncompressed content against the source image's diff_ids.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, readManifestFor, writeBigLayerLayout, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, skopeo, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';
import { tamperLayerConsistently } from '../support/tamper.js';
import { InFlightMeter, metered } from '../support/in-flight.js';
import { loadPrivateKey } from '../../src/crypto/key-files.js';
import { Keyring } from '../../src/crypto/schemes/keyring.js';
import { decryptImage } from '../../src/ops/decrypt.js';
import { openDestination, openSource } from '../../src/transport/transports.js';

const registryBin = requireTool('docker-registry');
const skopeoBin = requireTool('skopeo');
const ready = Boolean(registryBin && skopeoBin && requireTool('openssl') && requireTool('htpasswd'));

/** Fast retries, so the failure tests do not wait through production backoff. */
const FAST_RETRY = ['--retry-times', '1'];

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let multi: BuiltLayout;
let key: KeyPairFiles;

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-registry-');
  cleanup = dir.cleanup;
  work = dir.path;
  key = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(31, 3, 300 * 1024) }, { files: [{ path: 'etc/motd', content: 'hi\n' }] }, { files: randomLayerFiles(32, 2, 2 * 1024 * 1024) }] }],
  });
  multi = await buildOciLayout(path.join(work, 'multi'), {
    tag: 'v1',
    images: [
      { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ files: randomLayerFiles(41, 2, 100 * 1024) }, { files: randomLayerFiles(42, 1, 50 * 1024) }] },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [{ files: randomLayerFiles(43, 2, 100 * 1024) }] },
    ],
  });
});
afterAll(async () => cleanup?.());

function diffIds(layout: BuiltLayout, image = 0): string[] {
  return layout.images[image]!.layers.map((l) => l.diffId);
}

/** Reads the manifest (or index) a registry serves for `ref`, as skopeo sees it. */
async function rawManifest(ref: string, tlsArgs: string[]): Promise<{ mediaType: string; layers?: Array<{ mediaType: string }>; manifests?: Array<{ platform?: { architecture: string } }> }> {
  const res = await skopeo(['inspect', '--raw', ...tlsArgs, ref]);
  return JSON.parse(res.stdout) as Awaited<ReturnType<typeof rawManifest>>;
}

describe.skipIf(!ready)('docker:// on a plain-HTTP registry', () => {
  let reg: RegistryServer;
  const plain = ['--insecure'];
  const skopeoSrc = ['--src-tls-verify=false'];
  const skopeoDest = ['--dest-tls-verify=false'];
  beforeAll(async () => {
    reg = (await startRegistry())!;
  });
  afterAll(async () => reg?.stop());

  it('imagegate encrypts into the registry, skopeo pulls and decrypts it', async () => {
    const ref = `docker://${reg.host}/team/app:1-enc`;
    const out = await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, ...plain, '--progress', 'plain']);
    expect(out.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(out.stderr).toMatch(/encrypted layer 2 \(sha256:/);
    const manifest = await rawManifest(ref, ['--tls-verify=false']);
    expect(manifest.layers!.map((l) => l.mediaType.endsWith('+encrypted'))).toEqual([true, true, true]);

    const dec = await testTempDir('sk-dec-');
    await skopeo(['copy', ...skopeoSrc, '--decryption-key', key.privateKeyPath, ref, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('skopeo encrypts into the registry, imagegate pulls and decrypts it', async () => {
    const ref = `docker://${reg.host}/team/from-skopeo:1`;
    await skopeo(['copy', ...skopeoDest, '--encryption-key', `jwe:${key.publicKeyPath}`, `oci:${src.dir}:v1`, ref]);
    const dec = await testTempDir('ig-dec-');
    await imagegateOk(['decrypt', ref, `oci:${dec}:v1`, '-k', key.privateKeyPath, ...plain]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('decrypts registry to registry, mounting the unchanged config from the source repository', async () => {
    const enc = `docker://${reg.host}/team/app:1-enc`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, enc, '-r', `jwe:${key.publicKeyPath}`, ...plain, '-q']);
    const out = await imagegateOk(['decrypt', enc, `docker://${reg.host}/other/app:1`, '-k', key.privateKeyPath, ...plain, '--progress', 'json']);
    const events = out.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { phase: string; label: string });
    expect(events.find((e) => e.label.startsWith('config'))?.phase).toBe('skipped');
    // Decrypting gives back the original image, byte for byte: same manifest digest as the source.
    expect(out.stdout.trim()).toBe(src.root.digest);
    const dec = await testTempDir('sk-dec-');
    await skopeo(['copy', ...skopeoSrc, `docker://${reg.host}/other/app:1`, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('pushes a multi-platform image as an index, encrypting the platforms --platform selects', async () => {
    const ref = `docker://${reg.host}/team/multi:1-enc`;
    await imagegateOk(['encrypt', `oci:${multi.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--platform', 'linux/arm64', ...plain, '-q']);
    const index = await rawManifest(ref, ['--tls-verify=false']);
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests!.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);
    const report = JSON.parse((await imagegateOk(['inspect', '--json', ref, ...plain])).stdout) as { images: Array<{ platform: string; layers: Array<{ encrypted: boolean }> }> };
    expect(report.images.map((i) => [i.platform, i.layers.map((l) => l.encrypted)])).toEqual([
      ['linux/amd64', [false, false]],
      ['linux/arm64/v8', [true]],
    ]);
    // The whole index comes back through skopeo (--all) and decrypts per platform.
    const dec = await testTempDir('ig-dec-');
    await imagegateOk(['decrypt', ref, `oci:${dec}:v1`, '-k', key.privateKeyPath, ...plain]);
    expect(await layerContentDigests(dec, 'v1', { os: 'linux', architecture: 'amd64' })).toEqual(diffIds(multi, 0));
    expect(await layerContentDigests(dec, 'v1', { os: 'linux', architecture: 'arm64', variant: 'v8' })).toEqual(diffIds(multi, 1));
    const sk = await testTempDir('sk-dec-');
    await skopeo(['copy', '--all', ...skopeoSrc, '--decryption-key', key.privateKeyPath, ref, `oci:${sk}:v1`]);
    expect(await layerContentDigests(sk, 'v1', { os: 'linux', architecture: 'arm64', variant: 'v8' })).toEqual(diffIds(multi, 1));
  });

  it('uploads in chunks when asked, and skopeo reads the result', async () => {
    const ref = `docker://${reg.host}/team/chunked:1`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--chunk-size', '256K', ...plain, '-q']);
    const dec = await testTempDir('sk-dec-');
    await skopeo(['copy', ...skopeoSrc, '--decryption-key', key.privateKeyPath, ref, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('a layer that fails its HMAC while being pushed fails the push at once (exit 5), leaving no tag', async () => {
    const enc = await testTempDir('tampered-');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${enc}:v1`, '-r', `jwe:${key.publicKeyPath}`, '-q']);
    await tamperLayerConsistently(enc, 'v1', 1);
    const res = await imagegate(['decrypt', `oci:${enc}:v1`, `docker://${reg.host}/team/tampered:1`, '-k', key.privateKeyPath, ...plain, '--progress', 'json']);
    expect(res.code, res.stderr).toBe(5);
    // At once: the failure is final, so no blob is tried again (told by its events, not by a clock a busy machine moves).
    const events = res.stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as { event: string; phase?: string; error?: { code: string } });
    expect(events.filter((e) => e.phase === 'retry')).toEqual([]);
    expect(events.at(-1)).toMatchObject({ event: 'result', ok: false, error: { code: 'INTEGRITY' } });
    expect((await imagegate(['inspect', `docker://${reg.host}/team/tampered:1`, ...plain])).code).toBe(3);
  });

  it('names an unknown repository or tag and exits 3', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/no/such-repo:1`, ...plain]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain(`${reg.host}/no/such-repo:1`);
    expect(res.stderr).toMatch(/MANIFEST_UNKNOWN|NAME_UNKNOWN/);
  });

  it('refuses plain HTTP unless --insecure is given, and --insecure for a remote host', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/team/app:1-enc`]);
    expect(res.code).toBe(8);
    expect(res.stderr).toMatch(/--insecure/);
    const remote = await imagegate(['inspect', 'docker://registry.example.com/app:1', '--insecure']);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/only to registries on this machine/);
  });

  it('streams a 256 MiB layer registry to registry, holding a few MiB of it at once', async () => {
    const big = await writeBigLayerLayout(await testTempDir('big-'), 256 * 1024 * 1024, { compression: 'gzip-stored', tag: 'v1' });
    const ref = `docker://${reg.host}/team/big:1`;
    await imagegateOk(['encrypt', `oci:${big.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, ...plain, '-q']);
    // Counted in this process, not as peak RSS, which a loaded machine moves (test/support/in-flight.ts).
    const meter = new InFlightMeter();
    const registry = { registry: { insecure: true } };
    const source = await openSource(ref, registry);
    try {
      const destination = meter.wrap(await openDestination(`docker://${reg.host}/team/big-plain:1`, registry));
      await decryptImage(source, destination, { ...metered(meter), keyring: new Keyring([await loadPrivateKey(key.privateKeyPath)]) });
    } finally {
      await source.close();
    }
    expect(meter.peak).toBeGreaterThan(0);
    expect(meter.peak).toBeLessThan(16 * 1024 * 1024);
    const m = await readManifestFor(big.dir, 'v1');
    const pushed = await rawManifest(`docker://${reg.host}/team/big-plain:1`, ['--tls-verify=false']);
    expect(pushed.layers!.map((l) => l.mediaType)).toEqual(m.layers.map((l) => l.mediaType));
    const dec = await testTempDir('sk-big-');
    await skopeo(['copy', ...skopeoSrc, `docker://${reg.host}/team/big-plain:1`, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(big));
  });
});

describe.skipIf(!ready)('a registry killed in the middle of a push', () => {
  let reg: RegistryServer;
  beforeAll(async () => {
    reg = (await startRegistry())!;
  });
  afterAll(async () => reg?.stop());

  it('fails with a clear error, leaves no tag, and a rerun completes', async () => {
    const big = await writeBigLayerLayout(await testTempDir('kill-'), 192 * 1024 * 1024, { compression: 'gzip-stored', tag: 'v1' });
    const ref = `docker://${reg.host}/team/killed:1`;
    const args = [CLI, 'encrypt', `oci:${big.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--insecure', '--progress', 'json', ...FAST_RETRY];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killed = false;
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // Kill the registry once a good part of the layer is on its way.
      if (!killed && /"phase":"bytes","action":"rewrite","bytes":(\d{8,})/.test(stderr)) {
        killed = true;
        void reg.kill();
      }
    });
    const code = await exited;
    expect(killed, stderr).toBe(true);
    expect(code, stderr).toBe(8);
    expect(stderr).toMatch(new RegExp(`cannot reach registry ${reg.host.replace(/\./g, '\\.')}|registry ${reg.host.replace(/\./g, '\\.')}`));
    expect(stderr).not.toMatch(/internal error/);

    await reg.restart();
    const missing = await imagegate(['inspect', ref, '--insecure']);
    expect(missing.code, 'no tag may point at a half-pushed image').toBe(3);

    await imagegateOk(['encrypt', `oci:${big.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--insecure', '-q']);
    const dec = await testTempDir('sk-killed-');
    await skopeo(['copy', '--src-tls-verify=false', '--decryption-key', key.privateKeyPath, ref, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(big));
  });
});

describe.skipIf(!ready)('docker:// over TLS with htpasswd Basic auth', () => {
  let reg: RegistryServer;
  beforeAll(async () => {
    reg = (await startRegistry({ tls: true, htpasswd: true }))!;
  });
  afterAll(async () => reg?.stop());

  it('pushes with --creds and --ca-cert; skopeo pulls with the same credentials and decrypts', async () => {
    const ref = `docker://${reg.host}/secure/app:1`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${reg.password}`, '--ca-cert', reg.caFile!, '-q']);
    const dec = await testTempDir('sk-tls-');
    await skopeo(['copy', '--src-cert-dir', reg.certDir!, '--src-creds', `${reg.username}:${reg.password}`, '--decryption-key', key.privateKeyPath, ref, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('reads credentials from an auth file (REGISTRY_AUTH_FILE and --authfile)', async () => {
    const authFile = path.join(work, 'auth.json');
    const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    await writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { auth } } }));
    const ref = `docker://${reg.host}/secure/app:2`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--ca-cert', reg.caFile!, '-q'], { env: { REGISTRY_AUTH_FILE: authFile } });
    const res = await imagegateOk(['inspect', ref, '--authfile', authFile, '--ca-cert', reg.caFile!]);
    expect(res.stdout).toMatch(/3 of 3 layer\(s\) encrypted/);
  });

  it('a wrong password exits 7, names the registry, and never prints the password', async () => {
    const wrong = 'not-the-password-4711';
    const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `docker://${reg.host}/secure/app:3`, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${wrong}`, '--ca-cert', reg.caFile!]);
    expect(res.code).toBe(7);
    expect(res.stderr).toContain(reg.host);
    expect(res.stderr).toMatch(/UNAUTHORIZED|credentials/);
    expect(res.stderr + res.stdout).not.toContain(wrong);
  });

  it('without the CA the certificate is refused, with a hint to pass --ca-cert', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/secure/app:1`, '--creds', `${reg.username}:${reg.password}`]);
    expect(res.code).toBe(8);
    expect(res.stderr).toMatch(/not trusted.*--ca-cert/);
  });

  it('trusts a CA given in IMAGEGATE_REGISTRY_CA, as the webhook hands it to the containers it injects', async () => {
    const env = { IMAGEGATE_REGISTRY_CA: await readFile(reg.caFile!, 'utf8') };
    const res = await imagegate(['inspect', `docker://${reg.host}/secure/app:1`, '--creds', `${reg.username}:${reg.password}`], { env });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/3 of 3 layer\(s\) encrypted/);
  });
});

describe.skipIf(!ready)('docker:// whose blobs are served by a redirect to storage', () => {
  let reg: RegistryServer;
  let storage: http.Server;
  /** Every request the storage saw, with the Authorization it carried, if any. */
  const seen: Array<{ url: string; authorization?: string }> = [];
  beforeAll(async () => {
    // Storage in front of the registry's own data directory, as an S3 bucket or CDN would be.
    let dataDir = '';
    storage = http.createServer((req, res) => {
      seen.push({ url: req.url!, ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}) });
      createReadStream(path.join(dataDir, decodeURIComponent(new URL(req.url!, 'http://x').pathname)))
        .on('error', () => res.writeHead(404).end())
        .pipe(res);
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    reg = (await startRegistry({ htpasswd: true, redirectBlobsTo: `http://127.0.0.1:${(storage.address() as AddressInfo).port}` }))!;
    dataDir = reg.dataDir;
  });
  afterAll(async () => {
    await reg?.stop();
    await new Promise((r) => storage?.close(r));
  });

  it("pulls every blob from storage without the registry's credentials", async () => {
    const creds = ['--creds', `${reg.username}:${reg.password}`, '--insecure'];
    const ref = `docker://${reg.host}/stored/app:1`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, ...creds, '-q']);
    seen.length = 0;
    const dec = await testTempDir('redirected-');
    await imagegateOk(['decrypt', ref, `oci:${dec}:v1`, '-k', key.privateKeyPath, ...creds]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
    // The config and three layers came from storage, and none of those requests carried the registry's Basic auth.
    expect(seen.filter((r) => r.url.startsWith('/docker/registry/v2/blobs/sha256/'))).toHaveLength(4);
    expect(seen.filter((r) => r.authorization !== undefined)).toEqual([]);
  });
});

describe.skipIf(!ready)('docker:// with Bearer tokens', () => {
  let reg: RegistryServer;
  beforeAll(async () => {
    reg = (await startRegistry({ tls: true, tokenAuth: true }))!;
  });
  afterAll(async () => reg?.stop());

  it('gets push and pull tokens from the realm, caches them per scope, and skopeo reads the result', async () => {
    const ref = `docker://${reg.host}/tok/app:1`;
    reg.tokenRequests.length = 0;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${reg.password}`, '--ca-cert', reg.caFile!, '-q']);
    const granted = reg.tokenRequests.filter((r) => r.status === 200);
    expect(granted.length).toBeGreaterThan(0);
    // Five blobs and a manifest were pushed; one token per scope set, not one per request.
    expect(granted.length).toBeLessThanOrEqual(2);
    expect(granted[0]!.scope).toContain('repository:tok/app:push,pull');
    const dec = await testTempDir('sk-tok-');
    await skopeo(['copy', '--src-cert-dir', reg.certDir!, '--src-creds', `${reg.username}:${reg.password}`, '--decryption-key', key.privateKeyPath, ref, `oci:${dec}:v1`]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('anonymous access may pull but not push', async () => {
    await imagegateOk(['inspect', `docker://${reg.host}/tok/app:1`, '--ca-cert', reg.caFile!]);
    const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `docker://${reg.host}/tok/anon:1`, '-r', `jwe:${key.publicKeyPath}`, '--ca-cert', reg.caFile!]);
    expect(res.code).toBe(7);
    expect(res.stderr).toContain(reg.host);
  });

  it('wrong credentials are refused by the token server with exit 7', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/tok/app:1`, '--creds', `${reg.username}:nope`, '--ca-cert', reg.caFile!]);
    expect(res.code).toBe(7);
    expect(res.stderr).toMatch(/token server .* refused the credentials from --creds/);
  });
});
