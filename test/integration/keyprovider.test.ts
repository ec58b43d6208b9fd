/**
 * `imagegate keyprovider` with a current ocicrypt peer: upstream skopeo built against ocicrypt 1.3 (Debian's skopeo
 * has no key providers), and a real OpenBao. The peer encrypts with `provider:imagegate`, imagegate decrypts; we
 * encrypt with `vault:`, the peer decrypts; over the cmd protocol and over gRPC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuiltTool } from '../support/built-tools.js';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
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

  it('a provider failure reaches the peer as a clear error', async () => {
    const enc = await testTempDir('peer-fail-');
    const res = await peerCopy(cmdConfig, ['--encryption-key', 'provider:imagegate:transit/layers', `oci:${src.dir}:v1`, `oci:${enc}:v1`]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/names no repository to bind transit\/layers to: use provider:imagegate:transit\/layers@HOST\/REPOSITORY/);
  });
});
