/**
 * Real clients, each in both directions it can (issue 13, "Real clients"), through a real registry (docker-registry on
 * 127.0.0.1, plain HTTP):
 * - buildah (Debian 1.28, ocicrypt 1.0.3: jwe only) pulls with --decryption-key what imagegate encrypted, and pushes
 *   with --encryption-key what imagegate decrypts; its storage is private (vfs under a temp directory);
 * - imgcrypt v1.1.8's ctr-enc (ocicrypt 1.1.8) against a containerd 1.6 of the test's own: `images encrypt` and
 *   `images decrypt` with jwe keys, and with `provider:imagegate` through ocicrypt's key-provider configuration calling
 *   `imagegate keyprovider`, which unwraps with a derived Transit key of a real OpenBao.
 * Every check compares each layer's uncompressed tar with the source's diff_id, and each refusal shows the client really
 * decrypts. skopeo 1.9.3 and 1.19 have their own files (skopeo-interop.test.ts, keyprovider.test.ts).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, type BuiltLayout } from '../support/image-builder.js';
import { imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findImgcryptTool } from '../support/imgcrypt.js';
import { writeImagegateKeyProviderConfig } from '../support/keyprovider-config.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { privateBuildah } from '../support/private-buildah.js';
import { privateContainerdUnavailable, startPrivateContainerd, type PrivateContainerd } from '../support/private-containerd.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, run, runOk, tempDir, testTempDir, type KeyPairFiles, type RunOptions, type RunResult } from '../support/tools.js';

const registryBin = requireTool('docker-registry');
const buildahBin = requireTool('buildah');
const ctrEncBin = findImgcryptTool('ctr-enc');
const containerdMissing = ctrEncBin ? privateContainerdUnavailable() : 'ctr-enc is not built';
const baoBin = findOpenBao();

/** A file only the top layer holds: what a client must read back after decrypting. */
const MARKER = { path: 'etc/imagegate-client', content: 'written by imagegate clients.test.ts\n' };
/** The test images are linux/amd64 (image-builder's default), whatever this machine is. */
const PLATFORM = 'linux/amd64';
/** imagegate against the plain-HTTP loopback registry, without progress output. */
const REGISTRY_FLAGS = ['--insecure', '--progress', 'none', '-q'];

let registry: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let srcRef: string;
let diffIds: string[];
let rsa: KeyPairFiles;
let ec: KeyPairFiles;

beforeAll(async () => {
  if (!registryBin || (!buildahBin && containerdMissing)) return;
  const dir = await tempDir('clients-');
  cleanup = dir.cleanup;
  work = dir.path;
  registry = (await startRegistry())!;
  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(81, 2, 256 * 1024) }, { files: [MARKER] }] }],
  });
  srcRef = `oci:${src.dir}:v1`;
  diffIds = src.images[0]!.layers.map((l) => l.diffId);
  rsa = await makeKeyPair(path.join(work, 'keys'), 'rsa');
  ec = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await cleanup?.();
});

/** `repository` in the test registry, e.g. 127.0.0.1:PORT/clients/NAME. */
function repo(name: string): string {
  return `${registry.host}/clients/${name}`;
}

/** Per layer: encrypted, and with which schemes, as `imagegate inspect --json` reports an image. */
async function encryptionOf(ref: string, opts: RunOptions = {}): Promise<Array<[boolean, string[]]>> {
  const report = JSON.parse((await imagegateOk(['inspect', '--json', ref, '--insecure'], opts)).stdout) as {
    images: Array<{ layers: Array<{ encrypted: boolean; schemes: Array<{ scheme: string }> }> }>;
  };
  return report.images[0]!.layers.map((l) => [l.encrypted, l.schemes.map((s) => s.scheme)]);
}

describe.skipIf(!registryBin || !buildahBin)('buildah (Debian 1.28, ocicrypt 1.0.3) with jwe keys', () => {
  it('pulls with --decryption-key what imagegate encrypted into the registry, and refuses a key that is no recipient', async () => {
    const buildah = await privateBuildah(buildahBin!, await testTempDir('buildah-pull-'));
    const ref = `${repo('buildah-pull')}:enc`;
    await imagegateOk(['encrypt', srcRef, `docker://${ref}`, '-r', `jwe:${rsa.publicKeyPath}`, ...REGISTRY_FLAGS]);
    expect(await encryptionOf(`docker://${ref}`)).toEqual([
      [true, ['jwe']],
      [true, ['jwe']],
    ]);
    const pull = ['pull', '-q', buildah.policyFlag, '--tls-verify=false', '--decryption-key'];

    const refused = await buildah.run([...pull, ec.privateKeyPath, `docker://${ref}`]);
    expect(refused.code, refused.stderr).not.toBe(0);
    expect(refused.stderr).toContain('no suitable key unwrapper found or none of the private keys could be used for decryption');

    const id = (await buildah.ok([...pull, rsa.privateKeyPath, `docker://${ref}`])).stdout.trim();
    expect(await buildah.readImageFile(id, MARKER.path)).toBe(MARKER.content);
    // Every layer as buildah stored it, written back out plain: the same tar as the source's, byte for byte.
    const out = await testTempDir('buildah-out-');
    await buildah.ok(['push', '-q', buildah.policyFlag, id, `oci:${out}:v1`]);
    expect(await layerContentDigests(out, 'v1')).toEqual(diffIds);
  });

  it('pushes with --encryption-key jwe:PUBLIC_KEY what imagegate decrypt -k reads', async () => {
    const buildah = await privateBuildah(buildahBin!, await testTempDir('buildah-push-'));
    const id = await buildah.pullOciLayout(src.dir, 'v1');
    const ref = `${repo('buildah-push')}:enc`;
    await buildah.ok(['push', '-q', buildah.policyFlag, '--tls-verify=false', '--encryption-key', `jwe:${ec.publicKeyPath}`, id, `docker://${ref}`]);
    expect(await encryptionOf(`docker://${ref}`)).toEqual([
      [true, ['jwe']],
      [true, ['jwe']],
    ]);

    const dec = await testTempDir('buildah-dec-');
    await imagegateOk(['decrypt', `docker://${ref}`, `oci:${dec}:v1`, '-k', ec.privateKeyPath, ...REGISTRY_FLAGS]);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
  });
});

describe.skipIf(!registryBin || containerdMissing)('ctr-enc (imgcrypt v1.1.8, ocicrypt 1.1.8) with containerd 1.6', () => {
  let containerd: PrivateContainerd;
  /** The source image in containerd, as imported from an OCI archive: `127.0.0.1:PORT/clients/ctr-plain:v1`. */
  let plain: string;

  /** ctr-enc against the private containerd; no key-provider configuration unless `opts.env` gives one. */
  function ctr(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const env = { OCICRYPT_KEYPROVIDER_CONFIG: undefined, CONTAINERD_ADDRESS: undefined, ...opts.env };
    return run(ctrEncBin!, ['--address', containerd.address, '--namespace', 'imagegate-test', ...args], { ...opts, env });
  }
  async function ctrOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const r = await ctr(args, opts);
    if (r.code !== 0) throw new Error(`ctr-enc ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}\n--- containerd ---\n${containerd.log().slice(-4000)}`);
    return r;
  }
  /** Imports an OCI archive whose index tags the image `tag`, as `name:tag`, without unpacking (no snapshots needed). */
  async function importArchive(file: string, name: string): Promise<void> {
    await ctrOk(['images', 'import', '--no-unpack', '--platform', PLATFORM, '--base-name', name, file]);
  }
  /** Exports `name:tag` from containerd and unpacks the archive into a directory: an OCI layout tagged `tag`. */
  async function exportLayout(name: string): Promise<string> {
    const dir = await testTempDir('ctr-export-');
    const file = path.join(dir, 'image.tar');
    await ctrOk(['images', 'export', '--platform', PLATFORM, file, name]);
    const layout = path.join(dir, 'layout');
    await mkdir(layout);
    await runOk('tar', ['-xf', file, '-C', layout]);
    return layout;
  }

  beforeAll(async () => {
    containerd = (await startPrivateContainerd())!;
    const archive = path.join(work, 'plain.tar');
    await runOk('tar', ['-cf', archive, '-C', src.dir, '.']);
    await importArchive(archive, repo('ctr-plain'));
    plain = `${repo('ctr-plain')}:v1`;
  }, 120_000);

  afterAll(async () => {
    await containerd?.stop();
  });

  describe('jwe', () => {
    it('ctr-enc images encrypt --recipient jwe:PUBLIC_KEY, pushed to the registry: imagegate decrypt -k reads it', async () => {
      const enc = `${repo('ctr-jwe')}:enc`;
      await ctrOk(['images', 'encrypt', '--recipient', `jwe:${rsa.publicKeyPath}`, plain, enc]);
      await ctrOk(['images', 'push', '--plain-http', enc]);
      expect(await encryptionOf(`docker://${enc}`)).toEqual([
        [true, ['jwe']],
        [true, ['jwe']],
      ]);

      const dec = await testTempDir('ctr-jwe-dec-');
      await imagegateOk(['decrypt', `docker://${enc}`, `oci:${dec}:v1`, '-k', rsa.privateKeyPath, ...REGISTRY_FLAGS]);
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });

    it('imagegate encrypts (jwe): ctr-enc images decrypt --key reads it, and refuses a key that is no recipient', async () => {
      const archive = path.join(await testTempDir('ig-jwe-'), 'enc.tar');
      await imagegateOk(['encrypt', srcRef, `oci-archive:${archive}:enc`, '-r', `jwe:${ec.publicKeyPath}`, '--progress', 'none', '-q']);
      const name = repo('ig-jwe');
      await importArchive(archive, name);

      const refused = await ctr(['images', 'decrypt', '--key', rsa.privateKeyPath, `${name}:enc`, `${name}:wrong`]);
      expect(refused.code, refused.stdout).not.toBe(0);
      expect(refused.stderr).toContain('no suitable key unwrapper found or none of the private keys could be used for decryption');

      await ctrOk(['images', 'decrypt', '--key', ec.privateKeyPath, `${name}:enc`, `${name}:dec`]);
      expect(await layerContentDigests(await exportLayout(`${name}:dec`), 'dec')).toEqual(diffIds);
    });
  });

  describe.skipIf(!baoBin)('provider:imagegate (imagegate keyprovider as an ocicrypt cmd provider, OpenBao Transit)', () => {
    const KEY = 'ctr-clients';
    let bao: OpenBaoServer;
    let vaultEnv: Record<string, string>;
    let providerEnv: Record<string, string>;

    beforeAll(async () => {
      bao = (await startOpenBao())!;
      await bao.api('POST', `transit/keys/${KEY}`, { derived: true });
      vaultEnv = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
      const dir = path.join(work, 'keyprovider');
      await mkdir(dir);
      providerEnv = { OCICRYPT_KEYPROVIDER_CONFIG: await writeImagegateKeyProviderConfig(dir, vaultEnv) };
    }, 120_000);

    afterAll(async () => {
      await bao?.stop();
    });

    it('ctr-enc images encrypt --recipient provider:imagegate:transit/KEY@HOST/REPO: imagegate decrypt --vault reads it', async () => {
      const name = repo('ctr-provider');
      const enc = `${name}:enc`;
      await ctrOk(['images', 'encrypt', '--recipient', `provider:imagegate:transit/${KEY}@${name}`, plain, enc], { env: providerEnv });
      await ctrOk(['images', 'push', '--plain-http', enc]);
      expect(await encryptionOf(`docker://${enc}`)).toEqual([
        [true, ['provider.imagegate']],
        [true, ['provider.imagegate']],
      ]);
      const inspect = await imagegateOk(['inspect', `docker://${enc}`, '--insecure']);
      expect(inspect.stdout).toContain(`vault-transit transit/keys/${KEY} v1 bound to ${name}`);

      const dec = await testTempDir('ctr-provider-dec-');
      await imagegateOk(['decrypt', `docker://${enc}`, `oci:${dec}:v1`, '--vault', ...REGISTRY_FLAGS], { env: vaultEnv });
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds);
    });

    it('imagegate encrypts with -r vault:KEY: ctr-enc images decrypt --key provider:imagegate reads it, and fails without the provider', async () => {
      const name = repo('ig-provider');
      const archive = path.join(await testTempDir('ig-provider-'), 'enc.tar');
      await imagegateOk(['encrypt', srcRef, `oci-archive:${archive}:enc`, '-r', `vault:${KEY}`, '--bind', name, '--progress', 'none', '-q'], { env: vaultEnv });
      await importArchive(archive, name);

      // Without OCICRYPT_KEYPROVIDER_CONFIG ocicrypt knows no provider named imagegate: nothing else can unwrap.
      const refused = await ctr(['images', 'decrypt', '--key', 'provider:imagegate', `${name}:enc`, `${name}:refused`]);
      expect(refused.code, refused.stdout).not.toBe(0);
      expect(refused.stderr).toContain('missing private key needed for decryption');

      await ctrOk(['images', 'decrypt', '--key', 'provider:imagegate', `${name}:enc`, `${name}:dec`], { env: providerEnv });
      expect(await layerContentDigests(await exportLayout(`${name}:dec`), 'dec')).toEqual(diffIds);
    });
  });
});
