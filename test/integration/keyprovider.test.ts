/**
 * `imagegate keyprovider` with a current ocicrypt peer: upstream skopeo built against ocicrypt 1.3 (Debian's skopeo
 * has no key providers), and a real OpenBao. The peer encrypts with `provider:imagegate`, imagegate decrypts; we
 * encrypt with `vault:`, the peer decrypts; over the cmd protocol and over gRPC. Also the request shapes Go sends
 * (issue 13), a provider limited by `allowedBindings`, and Transit keys that are not derived (issue 12).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuiltTool } from '../support/built-tools.js';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { bindingContext } from '../../src/crypto/schemes/vault-item.js';
import { CLI, imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { replaceManifest } from '../support/tamper.js';
import { run, tempDir, testTempDir } from '../support/tools.js';

const peer = findBuiltTool('build-ocicrypt-peer.sh', 'the ocicrypt peer (skopeo with ocicrypt 1.3)');
const ready = Boolean(peer && findOpenBao());
const BINDING = 'registry.example/team/app';
const PROVIDER_ANNOTATION = 'org.opencontainers.image.enc.keys.provider.imagegate';

let bao: OpenBaoServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let vaultEnv: Record<string, string>;
let cmdConfig: string;
let grpcConfig: string;
let grpcServer: ChildProcess | undefined;
/** A provider limited to `registry.example/team/**` by allowedBindings (cmd transport). */
let restrictedConfig: string;

/** Runs the peer with a key-provider configuration. */
function peerCopy(config: string, args: string[]): ReturnType<typeof run> {
  return run(peer!, ['--insecure-policy', 'copy', '-q', ...args], { env: { OCICRYPT_KEYPROVIDER_CONFIG: config } });
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-keyprovider-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  await bao.api('POST', 'transit/keys/layers', { derived: true });
  vaultEnv = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(61, 2, 200 * 1024) }, { files: [{ path: 'etc/motd', content: 'provider\n' }] }] }],
  });

  // ocicrypt runs the provider with fixed arguments and nothing else: settings travel in --config.
  const settings = path.join(work, 'keyprovider.json');
  await writeFile(settings, JSON.stringify({ vault: vaultEnv }));
  const wrapper = path.join(work, 'imagegate-keyprovider');
  await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" keyprovider --config "${settings}"\n`);
  await chmod(wrapper, 0o755);
  cmdConfig = path.join(work, 'ocicrypt-cmd.json');
  await writeFile(cmdConfig, JSON.stringify({ 'key-providers': { imagegate: { cmd: { path: wrapper, args: [] } } } }));

  const restrictedSettings = path.join(work, 'keyprovider-restricted.json');
  await writeFile(restrictedSettings, JSON.stringify({ vault: vaultEnv, allowedBindings: ['registry.example/team/**', 'registry.example/shared/*'] }));
  const restrictedWrapper = path.join(work, 'imagegate-keyprovider-restricted');
  await writeFile(restrictedWrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" keyprovider --config "${restrictedSettings}"\n`);
  await chmod(restrictedWrapper, 0o755);
  restrictedConfig = path.join(work, 'ocicrypt-restricted.json');
  await writeFile(restrictedConfig, JSON.stringify({ 'key-providers': { imagegate: { cmd: { path: restrictedWrapper, args: [] } } } }));

  grpcServer = spawn(process.execPath, [CLI, 'keyprovider', '--config', settings, '--grpc', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    grpcServer!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    grpcServer!.on('exit', (code) => reject(new Error(`keyprovider --grpc exited with ${code}`)));
  });
  grpcConfig = path.join(work, 'ocicrypt-grpc.json');
  await writeFile(grpcConfig, JSON.stringify({ 'key-providers': { imagegate: { grpc: address } } }));
}, 120_000);

afterAll(async () => {
  grpcServer?.kill('SIGTERM');
  await bao?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('imagegate keyprovider with skopeo 1.19 / ocicrypt 1.3', () => {
  it.each([
    ['cmd', () => cmdConfig],
    ['gRPC', () => grpcConfig],
  ])('over %s: the peer encrypts with provider:imagegate, imagegate decrypts', async (_transport, config) => {
    const enc = await testTempDir('peer-enc-');
    const res = await peerCopy(config(), ['--encryption-key', `provider:imagegate:transit/layers@${BINDING}`, `oci:${src.dir}:v1`, `oci:${enc}:v1`]);
    expect(res.code, res.stderr).toBe(0);
    const m = await readManifestFor(enc, 'v1');
    expect(m.layers.every((l) => l.mediaType.endsWith('+encrypted') && l.annotations?.[PROVIDER_ANNOTATION] !== undefined)).toBe(true);
    const inspect = await imagegateOk(['inspect', `oci:${enc}:v1`]);
    expect(inspect.stdout).toContain(`vault-transit transit/keys/layers v1 bound to ${BINDING}`);

    const dec = await testTempDir('ig-dec-');
    await imagegateOk(['decrypt', `oci:${enc}:v1`, `oci:${dec}:v1`, '--vault'], { env: vaultEnv });
    expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
  });

  it.each([
    ['cmd', () => cmdConfig],
    ['gRPC', () => grpcConfig],
  ])('over %s: imagegate encrypts with vault:, the peer decrypts with provider:imagegate', async (_transport, config) => {
    const enc = await testTempDir('ig-enc-');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${enc}:v1`, '-r', 'vault:transit/layers', '--bind', BINDING, '-q'], { env: vaultEnv });
    const dec = await testTempDir('peer-dec-');
    const res = await peerCopy(config(), ['--decryption-key', 'provider:imagegate', `oci:${enc}:v1`, `oci:${dec}:v1`]);
    expect(res.code, res.stderr).toBe(0);
    expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
  });

  it('decrypts when the runtime passes a PEM key beside the provider (ocicrypt sends "privkeys-passwords": [null])', async () => {
    // Issue 13: Go marshals a nil []byte as null, and ocicrypt 1.3 sends one password slot per key, nil without one.
    const enc = await testTempDir('ig-enc-pem-');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${enc}:v1`, '-r', 'vault:transit/layers', '--bind', BINDING, '-q'], { env: vaultEnv });
    const pem = path.join(work, 'unrelated.pem');
    await run('openssl', ['genrsa', '-out', pem, '2048']);
    for (const config of [cmdConfig, grpcConfig]) {
      const dec = await testTempDir('peer-dec-pem-');
      const res = await peerCopy(config, ['--decryption-key', 'provider:imagegate', '--decryption-key', pem, `oci:${enc}:v1`, `oci:${dec}:v1`]);
      expect(res.code, res.stderr).toBe(0);
      expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
    }
  });

  it('allowedBindings: a node pool limited to some repositories decrypts images bound inside them, and no other', async () => {
    const inside = await testTempDir('ig-enc-inside-');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${inside}:v1`, '-r', 'vault:transit/layers', '--bind', BINDING, '-q'], { env: vaultEnv });
    const dec = await testTempDir('peer-dec-inside-');
    const ok = await peerCopy(restrictedConfig, ['--decryption-key', 'provider:imagegate', `oci:${inside}:v1`, `oci:${dec}:v1`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));

    // Bound to another team's repository: this node's Vault identity could unwrap it, its provider will not.
    for (const binding of ['registry.example/other/app', 'registry.example/shared/deeper/app']) {
      const outside = await testTempDir('ig-enc-outside-');
      await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${outside}:v1`, '-r', 'vault:transit/layers', '--bind', binding, '-q'], { env: vaultEnv });
      const refused = await peerCopy(restrictedConfig, ['--decryption-key', 'provider:imagegate', `oci:${outside}:v1`, `oci:${await testTempDir('peer-dec-outside-')}:v1`]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`the layer key is bound to repository ${binding}, which this key provider may not unwrap`);
      expect(refused.stderr).toContain('outside allowedBindings in its configuration (registry.example/team/**, registry.example/shared/*)');
      // The unrestricted provider decrypts the same image: the refusal is the setting's, not Vault's.
      const res = await peerCopy(cmdConfig, ['--decryption-key', 'provider:imagegate', `oci:${outside}:v1`, `oci:${await testTempDir('peer-dec-open-')}:v1`]);
      expect(res.code, res.stderr).toBe(0);
    }
  });

  it('a Transit key that is not derived is refused for wrapping and for unwrapping, by the provider and by decrypt', async () => {
    await bao.api('POST', 'transit/keys/legacy', { type: 'aes256-gcm96' });
    const wrapped = await testTempDir('peer-enc-legacy-');
    const wrap = await peerCopy(cmdConfig, ['--encryption-key', `provider:imagegate:transit/legacy@${BINDING}`, `oci:${src.dir}:v1`, `oci:${wrapped}:v1`]);
    expect(wrap.code).not.toBe(0);
    expect(wrap.stderr).toContain('transit/keys/legacy is not a derived Transit key');

    // An image wrapped with it anyway (by an older imagegate, or by hand): every layer item re-wrapped with "legacy".
    const legacy = await testTempDir('ig-enc-legacy-');
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${legacy}:v1`, '-r', 'vault:transit/layers', '--bind', BINDING, '-q'], { env: vaultEnv });
    const manifest = await readManifestFor(legacy, 'v1');
    for (const layer of manifest.layers) {
      const item = JSON.parse(Buffer.from(layer.annotations![PROVIDER_ANNOTATION]!, 'base64').toString()) as { ciphertext: string; binding: string };
      const context = bindingContext(item.binding).toString('base64');
      const plaintext = (await bao.api('POST', 'transit/decrypt/layers', { ciphertext: item.ciphertext, context })).data.plaintext as string;
      const ciphertext = (await bao.api('POST', 'transit/encrypt/legacy', { plaintext, context })).data.ciphertext as string;
      const legacyItem = { v: 1, mount: 'transit', key: 'legacy', version: 1, ciphertext, binding: item.binding };
      layer.annotations![PROVIDER_ANNOTATION] = Buffer.from(JSON.stringify(legacyItem)).toString('base64');
    }
    await replaceManifest(legacy, 'v1', manifest);
    for (const config of [cmdConfig, grpcConfig]) {
      const res = await peerCopy(config, ['--decryption-key', 'provider:imagegate', `oci:${legacy}:v1`, `oci:${await testTempDir('peer-dec-legacy-')}:v1`]);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain('transit/keys/legacy is not a derived Transit key');
    }
    const dec = await imagegate(['decrypt', `oci:${legacy}:v1`, `oci:${await testTempDir('ig-dec-legacy-')}:v1`, '--vault'], { env: vaultEnv });
    expect(dec.code).toBe(4);
    expect(dec.stderr).toContain('transit/keys/legacy is not a derived Transit key');
  });

  it('a provider failure reaches the peer as a clear error', async () => {
    const enc = await testTempDir('peer-fail-');
    const res = await peerCopy(cmdConfig, ['--encryption-key', 'provider:imagegate:transit/layers', `oci:${src.dir}:v1`, `oci:${enc}:v1`]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/names no repository to bind transit\/layers to: use provider:imagegate:transit\/layers@HOST\/REPOSITORY/);
  });
});

describe('imagegate keyprovider --grpc listens only on this machine', () => {
  it.each(['0.0.0.0:50051', '[::]:50051', '192.0.2.10:50051'])('refuses %s with a usage error, before asking Vault', async (address) => {
    // No Vault settings at all: the address is refused first.
    const res = await imagegate(['keyprovider', '--grpc', address], { env: { VAULT_ADDR: undefined, VAULT_TOKEN: undefined } });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`imagegate: --grpc "${address}": `);
    expect(res.stderr).toContain('is not a loopback address; the key provider unwraps with the node\'s Vault identity for anyone who can connect');
  });

  it('refuses --grpc-socket-group without a Unix socket', async () => {
    const res = await imagegate(['keyprovider', '--grpc', '127.0.0.1:0', '--grpc-socket-group', '0']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--grpc-socket-group applies only with --grpc unix:///PATH');
  });
});

