/**
 * The node-model runtime configuration in deploy/runtime, used as shipped (only host paths are rewritten into a
 * temp dir): the ocicrypt key-provider registrations drive a current ocicrypt (skopeo 1.19 / ocicrypt 1.3, the
 * library CRI-O and imgcrypt's ctd-decoder link) to decrypt an imagegate image through `imagegate keyprovider`,
 * logged in to a real OpenBao as the node's AppRole; containerd parses the stream-processor configuration.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuiltTool } from '../support/built-tools.js';
import { findDeployTools, validateManifests } from '../support/deploy-tools.js';
import { buildOciLayout, randomLayerFiles, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { requireTool, run, tempDir, testTempDir } from '../support/tools.js';

const RUNTIME = fileURLToPath(new URL('../../deploy/runtime/', import.meta.url));
const peer = findBuiltTool('build-ocicrypt-peer.sh', 'the ocicrypt peer (skopeo with ocicrypt 1.3)');
const containerd = requireTool('containerd');
const ready = Boolean(peer && findOpenBao());
const deployTools = findDeployTools();
const KEY = 'node-layers';
const BINDING = 'registry.example/team/app';

let bao: OpenBaoServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let encrypted: string;
/** deploy/runtime/keyprovider.json with this test's Vault and the node AppRole's real credentials. */
let nodeSettings: string;
let grpcServer: ChildProcess | undefined;

/** `text` with `from` replaced by `to`, which must occur exactly `times` times (so a renamed path fails here). */
function rewrite(text: string, from: string, to: string, times = 1): string {
  expect(text.split(from).length - 1, `${from} in the shipped file`).toBe(times);
  return text.split(from).join(to);
}

/** The shipped file, rewritten, written to the temp dir; returns its path. */
async function shipped(name: string, rewrites: Array<[string, string, number?]>): Promise<string> {
  let text = await readFile(path.join(RUNTIME, name), 'utf8');
  for (const [from, to, times] of rewrites) text = rewrite(text, from, to, times);
  const out = path.join(work, path.basename(name));
  await writeFile(out, text);
  return out;
}

async function peerDecrypts(ocicryptConfig: string): Promise<void> {
  const out = await testTempDir('runtime-dec-');
  const res = await run(peer!, ['--insecure-policy', 'copy', '-q', '--decryption-key', 'provider:imagegate', `oci:${encrypted}:v1`, `oci:${out}:v1`], {
    env: { OCICRYPT_KEYPROVIDER_CONFIG: ocicryptConfig },
  });
  expect(res.code, res.stderr).toBe(0);
  expect(await layerContentDigests(out, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-runtime-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  await bao.api('POST', `transit/keys/${KEY}`, { derived: true });
  // The node identity: an AppRole that may decrypt with the node key and do nothing else.
  await bao.api('PUT', 'sys/policies/acl/imagegate-node', { policy: `path "transit/decrypt/${KEY}" { capabilities = ["update"] }` });
  await bao.api('POST', 'auth/approle/role/imagegate-node', { token_policies: ['imagegate-node'], token_ttl: '10m' });
  const roleId = (await bao.api('GET', 'auth/approle/role/imagegate-node/role-id')).data.role_id as string;
  const secretId = (await bao.api('POST', 'auth/approle/role/imagegate-node/secret-id')).data.secret_id as string;
  const secretFile = path.join(work, 'node-secret-id');
  await writeFile(secretFile, `${secretId}\n`, { mode: 0o600 });
  const shippedSettings = JSON.parse(await readFile(path.join(RUNTIME, 'keyprovider.json'), 'utf8')) as { vault: Record<string, string> };
  expect(Object.keys(shippedSettings.vault).sort()).toEqual(['IMAGEGATE_VAULT_AUTH', 'VAULT_ADDR', 'VAULT_CACERT', 'VAULT_ROLE_ID', 'VAULT_SECRET_ID_FILE']);
  // The dev server speaks plain HTTP, so the CA setting goes; everything else is the shipped file's.
  const { VAULT_CACERT: _ca, ...vault } = shippedSettings.vault;
  nodeSettings = path.join(work, 'keyprovider.json');
  await writeFile(nodeSettings, JSON.stringify({ vault: { ...vault, VAULT_ADDR: bao.address, VAULT_ROLE_ID: roleId, VAULT_SECRET_ID_FILE: secretFile } }));

  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(71, 2, 100 * 1024) }, { files: [{ path: 'etc/motd', content: 'node model\n' }] }] }],
  });
  encrypted = path.join(work, 'enc');
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${encrypted}:v1`, '-r', `vault:${KEY}`, '--bind', BINDING, '-q'], {
    env: { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken },
  });
}, 120_000);

afterAll(async () => {
  grpcServer?.kill('SIGTERM');
  await bao?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('deploy/runtime: ocicrypt key-provider registration (ocicrypt 1.3)', () => {
  it('ocicrypt_keyprovider.conf (gRPC on the DaemonSet socket): the runtime side decrypts as the node AppRole', async () => {
    const socket = path.join(work, 'keyprovider.sock');
    grpcServer = spawn(process.execPath, [CLI, 'keyprovider', '--config', nodeSettings, '--grpc', `unix://${socket}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    grpcServer.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      grpcServer!.stdout!.once('data', () => resolve());
      grpcServer!.once('exit', (code) => reject(new Error(`keyprovider --grpc exited with ${code}: ${stderr}`)));
    });
    const conf = await shipped('ocicrypt_keyprovider.conf', [['/run/imagegate/keyprovider.sock', socket]]);
    await peerDecrypts(conf);
  });

  it('ocicrypt_keyprovider.cmd.conf (the provider as a command, as CRI-O or ctd-decoder run it) decrypts too', async () => {
    const bin = path.join(work, 'imagegate');
    await writeFile(bin, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    await chmod(bin, 0o755);
    const conf = await shipped('ocicrypt_keyprovider.cmd.conf', [
      ['/usr/local/bin/imagegate', bin],
      ['/etc/imagegate/keyprovider.json', nodeSettings],
    ]);
    await peerDecrypts(conf);
  });

  it('the node identity cannot wrap: encrypting through the node provider is refused by Vault', async () => {
    const conf = await shipped('ocicrypt_keyprovider.conf', [['/run/imagegate/keyprovider.sock', path.join(work, 'keyprovider.sock')]]);
    const out = await testTempDir('runtime-enc-');
    const res = await run(peer!, ['--insecure-policy', 'copy', '-q', '--encryption-key', `provider:imagegate:${KEY}@${BINDING}`, `oci:${src.dir}:v1`, `oci:${out}:v1`], {
      env: { OCICRYPT_KEYPROVIDER_CONFIG: conf },
    });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(new RegExp(`transit/encrypt/${KEY}`));
  });
});

describe.skipIf(!containerd)('deploy/runtime/containerd (containerd 1.6, config version 2)', () => {
  it('containerd reads the stream processors and the node key model from config-v2.toml', async () => {
    // The shipped paths equal containerd's defaults, so they are moved to a marker first: a misspelt table or key
    // would then be missing from containerd's own dump of the configuration it parsed.
    const dir = await testTempDir('containerd-conf-');
    const text = rewrite(await readFile(path.join(RUNTIME, 'containerd/config-v2.toml'), 'utf8'), '/etc/containerd/ocicrypt/', '/imagegate-test-marker/', 4);
    const conf = path.join(dir, 'config.toml');
    await writeFile(conf, text);
    const res = await run(containerd!, ['--config', conf, 'config', 'dump']);
    expect(res.code, res.stderr).toBe(0);
    const processors = res.stdout.slice(res.stdout.indexOf('[stream_processors]'));
    for (const mediaType of ['tar', 'tar.gzip']) {
      const table = processors.slice(processors.indexOf(`[stream_processors."io.containerd.ocicrypt.decoder.v1.${mediaType}"]`)).split('\n\n')[0]!;
      expect(table).toContain('path = "ctd-decoder"');
      expect(table).toContain('args = ["--decryption-keys-path", "/imagegate-test-marker/keys"]');
      expect(table).toContain('env = ["OCICRYPT_KEYPROVIDER_CONFIG=/imagegate-test-marker/ocicrypt_keyprovider.conf"]');
    }
    expect(res.stdout).toMatch(/\[plugins\."io\.containerd\.grpc\.v1\.cri"\.image_decryption\]\s+key_model = "node"/);
  });
});

describe.skipIf(!deployTools)('deploy/runtime/kubernetes', () => {
  it('the key-provider DaemonSet validates against the Kubernetes 1.35 schemas, and serves the registered socket', async () => {
    const text = await readFile(path.join(RUNTIME, 'kubernetes/keyprovider-daemonset.yaml'), 'utf8');
    const result = await validateManifests(deployTools!, text);
    expect(result.ok, result.summary).toBe(true);
    expect(result.resources.map((r) => r.kind)).toEqual(['ServiceAccount', 'DaemonSet']);
    // The socket the DaemonSet serves is the one ocicrypt_keyprovider.conf registers, inside the host directory.
    const conf = JSON.parse(await readFile(path.join(RUNTIME, 'ocicrypt_keyprovider.conf'), 'utf8')) as { 'key-providers': { imagegate: { grpc: string } } };
    const socket = conf['key-providers'].imagegate.grpc;
    expect(text).toContain(`"--grpc", "${socket}"`);
    expect(text).toContain(`path: ${path.dirname(socket.replace('unix://', ''))}\n`);
  });
});
