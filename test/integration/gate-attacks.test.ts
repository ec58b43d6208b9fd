/**
 * The attacks of the gate review (issue 12: protection follows the key, facts from what Vault signs, bounded work),
 * replayed against the running webhook, a real docker-registry, a real OpenBao Transit key and skopeo, each as an
 * attacker with registry write access and pod-authoring rights would run it. Each one was admitted (or misjudged)
 * by f415094.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, readBlobJson, resolveTag, type ImageManifest } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { replaceManifest } from '../support/tamper.js';
import { makeKeyPair, requireTool, skopeo, tempDir, type KeyPairFiles } from '../support/tools.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { startWebhook, type WebhookServer } from '../support/webhook-server.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry') && requireTool('skopeo') && requireTool('openssl'));
const VAULT_ANNOTATION = 'org.opencontainers.image.enc.keys.provider.imagegate';

let bao: OpenBaoServer;
let reg: RegistryServer;
let node: WebhookServer;
let podModel: WebhookServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let jwe: KeyPairFiles;
let blackHole: net.Server;
const holes: net.Socket[] = [];
let vaultEnv: Record<string, string>;

const skopeoTls = ['--src-tls-verify=false', '--dest-tls-verify=false'];

function policy(model: 'node' | 'pod', failurePolicy: 'open' | 'closed'): string {
  return `apiVersion: imagegate.dev/v1alpha1
kind: AdmissionPolicy
runtimeModel: ${model}
failurePolicy: ${failurePolicy}
namespaces:
  exempt: [kube-system]
repositories:
  - match: "${reg.host}/prod/**"
    keys:
      - key: transit/prod
        serviceAccounts: ["shop/web"]
  - match: "${reg.host}/strict/**"
    keys:
      - key: transit/prod
        minVersion: 2
        serviceAccounts: ["shop/web"]
`;
}

/** Puts a document into a repository of the plain-HTTP test registry, as anyone with push rights can. */
async function putManifest(repository: string, reference: string, json: object, mediaType: string): Promise<{ digest: string; size: number; mediaType: string }> {
  const body = Buffer.from(JSON.stringify(json));
  const res = await request(`${reg.url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`PUT ${repository}:${reference} answered ${res.statusCode}`);
  return { digest: res.headers['docker-content-digest'] as string, size: body.length, mediaType };
}

/** A manifest as the registry serves it, to edit as an attacker would. */
async function readManifest(repository: string, reference: string): Promise<ImageManifest & { mediaType: string; annotations?: Record<string, string> }> {
  const res = await request(`${reg.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (res.statusCode !== 200) throw new Error(`GET ${repository}:${reference} answered ${res.statusCode}`);
  return (await res.body.json()) as ImageManifest & { mediaType: string; annotations?: Record<string, string> };
}

let proxy: CountingProxy;

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-attacks-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  await bao.api('POST', 'transit/keys/prod', { derived: true });
  vaultEnv = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
  jwe = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');

  const plain = await buildOciLayout(path.join(work, 'plain'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(121, 1, 30 * 1024) }, { files: randomLayerFiles(122, 1, 10 * 1024) }] }] });
  const encrypt = (src: string, dst: string, ...args: string[]): Promise<unknown> => imagegateOk(['encrypt', src, dst, ...args, '--insecure', '-q'], { env: vaultEnv });
  await encrypt(`oci:${plain.dir}:v1`, `docker://${reg.host}/prod/app:1`, '-r', 'vault:prod');
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${plain.dir}:v1`, `docker://${reg.host}/prod/plain:1`]);

  blackHole = net.createServer((socket) => holes.push(socket));
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));

  proxy = await startCountingProxy(reg.url);
  const proxyHost = proxy.host;
  node = await startWebhook(path.join(work, 'node'), policy('node', 'open'), ['--insecure-registry', reg.host, '--insecure-registry', proxyHost, '--check-image', `registry.example/imagegate@sha256:${'c'.repeat(64)}`, '--check-vault-addr', 'https://vault.example:8200', '--check-vault-role', 'workloads', '--budget-ms', '1500']);
  podModel = await startWebhook(path.join(work, 'pod'), policy('pod', 'open'), ['--insecure-registry', reg.host, '--check-image', `registry.example/imagegate@sha256:${'c'.repeat(64)}`, '--check-vault-addr', 'https://vault.example:8200', '--check-vault-role', 'workloads', '--budget-ms', '1500']);
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  await node?.stop();
  await podModel?.stop();
  for (const socket of holes) socket.destroy();
  await new Promise((r) => (blackHole ? blackHole.close(r) : r(undefined)));
  await bao?.stop();
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('the gate against an attacker', () => {
  it('a byte-for-byte copy of a protected image into a repository no rule names is refused (protection follows the key)', async () => {
    await skopeo(['copy', ...skopeoTls, `docker://${reg.host}/prod/app:1`, `docker://${reg.host}/attacker/stolen:1`]);
    const res = await node.reviewPod('mutate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/attacker/stolen:1` }] });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain(`are bound to ${reg.host}/prod/app, not to ${reg.host}/attacker/stolen`);
    expect(res.status!.message).toContain('[rule binding-mismatch]');
    expect(res.status!.message).toContain(`--bind ${reg.host}/attacker/stolen`);
    // The same image where it belongs is admitted, with the check injected.
    const home = await node.reviewPod('mutate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/prod/app:1` }] });
    expect(home.allowed, home.status?.message).toBe(true);
    expect(node.patchOf(home).some((op) => op.path === '/spec/initContainers')).toBe(true);
  });

  it('another spelling of a protected registry is the same registry: a plaintext image there is refused', async () => {
    const port = reg.host.split(':')[1]!;
    for (const host of [`127.000.000.001:${port}`, `127.0.0.1:${port}`]) {
      const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${host}/prod/plain:1` }] });
      expect(res.allowed, host).toBe(false);
      expect(res.status!.message, host).toContain('[rule encryption-required]');
    }
  });

  it('a key version relabelled in the annotation is read from the Transit ciphertext, and the image is refused everywhere', async () => {
    const layout = path.join(work, 'relabel');
    await imagegateOk(['encrypt', `oci:${path.join(work, 'plain')}:v1`, `oci:${layout}:v1`, '-r', 'vault:prod', '--bind', `${reg.host}/strict/app`, '-q'], { env: vaultEnv });
    const entry = await resolveTag(layout, 'v1');
    const manifest = (await readBlobJson(layout, entry.digest)) as ImageManifest;
    for (const layer of manifest.layers) {
      const item = JSON.parse(Buffer.from(layer.annotations![VAULT_ANNOTATION]!, 'base64').toString()) as { version: number };
      expect(item.version).toBe(1);
      item.version = 2;
      layer.annotations![VAULT_ANNOTATION] = Buffer.from(JSON.stringify(item)).toString('base64');
    }
    await replaceManifest(layout, 'v1', manifest);
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg.host}/strict/app:1`]);

    const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/strict/app:1` }] });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('[rule tampered-key]');
    expect(res.status!.message).toContain('[rule key-version-too-old]');

    const decrypt = await imagegate(['decrypt', `docker://${reg.host}/strict/app:1`, `oci:${path.join(work, 'relabel-out')}:v1`, '--vault', '--insecure'], { env: vaultEnv });
    expect(decrypt.code, decrypt.stderr).toBe(5);
    expect(decrypt.stderr).toContain('the annotation was edited after wrapping');

    const audit = await imagegate(['audit', `${reg.host}/strict/app`, '--insecure', '--min-version', '2', '--json']);
    expect(audit.code).toBe(10);
    expect(audit.stdout).toContain('tampered-key-version-label:transit/keys/prod:v1');
    expect(audit.stdout).toContain('key-version-below-minimum:transit/keys/prod:v1<v2');
  });

  it('a jwe-only layer beside a Vault-wrapped one is refused under a rule with keys', async () => {
    const layout = path.join(work, 'mixed');
    await imagegateOk(['encrypt', `oci:${path.join(work, 'plain')}:v1`, `oci:${layout}:v1`, '-r', 'vault:prod', '--layer', '0', '--bind', `${reg.host}/prod/mixed`, '-q'], { env: vaultEnv });
    await imagegateOk(['encrypt', `oci:${layout}:v1`, `docker://${reg.host}/prod/mixed:1`, '-r', `jwe:${jwe.publicKeyPath}`, '--layer', '1', '--insecure', '-q']);
    const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/prod/mixed:1` }] });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('1 of its 2 encrypted layers are not wrapped with a Vault key');
    expect(res.status!.message).toContain('[rule other-recipients]');
  });

  it('an index graph built to fan out is refused after a handful of fetches', async () => {
    await skopeo(['copy', ...skopeoTls, `docker://${reg.host}/prod/plain:1`, `docker://${reg.host}/prod/fan:base`]);
    const raw = Buffer.from((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/prod/fan:base`])).stdout);
    const baseType = (JSON.parse(raw.toString()) as { mediaType: string }).mediaType;
    let top = { mediaType: baseType, digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`, size: raw.length };
    for (let level = 0; level < 7; level++) {
      top = await putManifest('prod/fan', `level-${level}`, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [top, top, top, top] }, 'application/vnd.oci.image.index.v1+json');
    }
    const proxyHost = proxy.host;
    proxy.reset();
    const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${proxyHost}/prod/fan:level-6` }] });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('list more than 1024 manifests in all');
    // One fetch per distinct document (eight), not one per listing (4^7 and more).
    const fetched = proxy.requests.filter((r) => r.startsWith('GET /v2/prod/fan/manifests/')).length;
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThanOrEqual(8);
  });

  it('node model: an image that cannot be looked up is refused even with failurePolicy: open', async () => {
    const image = `127.0.0.1:${(blackHole.address() as AddressInfo).port}/anything/x:1`;
    const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image }] });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('every image must be checked in the node runtime model');
  });

  it('the look-up budget stays inside the timeout the API server sent', async () => {
    const image = `127.0.0.1:${(blackHole.address() as AddressInfo).port}/anything/y:1`;
    const res = await node.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image }] }, { query: '?timeout=1s' });
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('longer than the 500 ms budget');
  });

  it('pod model: an image no rule protects is admitted without a registry call; a protected one is never admitted unchecked', async () => {
    const connections = holes.length;
    const unreachable = `127.0.0.1:${(blackHole.address() as AddressInfo).port}/public/tool:1`;
    const res = await podModel.reviewPod('mutate', { serviceAccountName: 'web', containers: [{ name: 'tool', image: unreachable }] });
    expect(res.allowed, res.status?.message).toBe(true);
    expect(res.warnings).toBeUndefined();
    expect(holes.length, 'no connection to its registry').toBe(connections);
    // A protected name that cannot be looked up: failurePolicy open does not let it through.
    const missing = await podModel.reviewPod('validate', { serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/prod/missing:1` }] });
    expect(missing.allowed).toBe(false);
    expect(missing.status!.message).toContain('could not check the images, so it refuses (failurePolicy: open)');
  });

  it('pod model: a base annotation pointing at another image, or at a tag, is refused; the image the encryptor wrote is admitted', async () => {
    // The encryptor's image: the plaintext base (the first layer of prod/plain) under the Vault-encrypted rest.
    const plainManifest = await readManifest('prod/plain', '1');
    const base = await putManifest('prod/plain', 'base', { ...plainManifest, layers: plainManifest.layers.slice(0, 1) }, plainManifest.mediaType);
    await imagegateOk(['encrypt', `docker://${reg.host}/prod/plain:1`, `docker://${reg.host}/prod/podapp:1`, '-r', 'vault:prod', '--plain-base', `docker://${reg.host}/prod/plain:base`, '--paths', 'data', '--insecure', '-q'], { env: vaultEnv });
    const pod = (tag: string) => ({ serviceAccountName: 'web', containers: [{ name: 'app', image: `${reg.host}/prod/podapp:${tag}` }] });
    const genuine = await podModel.reviewPod('mutate', pod('1'));
    expect(genuine.allowed, genuine.status?.message).toBe(true);
    expect(podModel.patchOf(genuine)).toContainEqual(expect.objectContaining({ path: '/spec/containers/0/image', value: `${reg.host}/prod/plain@${base.digest}` }));

    // The attacker (push rights only) keeps the Vault-wrapped layer, which still unwraps, and names their own base.
    await skopeo(['copy', ...skopeoTls, `docker://${reg.host}/prod/plain:1`, `docker://${reg.host}/attacker/evil:1`]);
    const evil = await putManifest('attacker/evil', 'pinned', await readManifest('attacker/evil', '1'), plainManifest.mediaType);
    const encrypted = await readManifest('prod/podapp', '1');
    for (const [tag, forgedBase, why] of [
      ['other-base', `${reg.host}/attacker/evil@${evil.digest}`, 'is not the bottom 1 layer(s) of this image'],
      ['tagged-base', `${reg.host}/prod/plain:base`, 'is not pinned by digest'],
    ] as const) {
      const annotations = { ...encrypted.annotations, 'dev.imagegate.pod.base': forgedBase };
      await putManifest('prod/podapp', tag, { ...encrypted, annotations }, encrypted.mediaType);
      const res = await podModel.reviewPod('mutate', pod(tag));
      expect(res.allowed, `${tag}: ${JSON.stringify(podModel.patchOf(res))}`).toBe(false);
      expect(res.status!.message).toContain(why);
    }
  });

  it('an exempt namespace is never looked up', async () => {
    // A registry of its own, so a connection pooled by an earlier test cannot hide a look-up.
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const image = `127.0.0.1:${(silent.address() as AddressInfo).port}/prod/z:1`;
      const res = await node.reviewPod('validate', { containers: [{ name: 'app', image }] }, { namespace: 'kube-system' });
      expect(res.allowed, res.status?.message).toBe(true);
      expect(res.warnings).toBeUndefined();
      expect(accepted).toHaveLength(0);
    } finally {
      for (const socket of accepted) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
});
});
