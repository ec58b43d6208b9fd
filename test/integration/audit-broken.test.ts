/**
 * `imagegate audit REGISTRY` goes on past a broken repository (issue 15, CI and operations). An interrupted first push
 * leaves exactly that: blobs in a repository with no manifest and no tag, or a tag whose manifest is gone. Built here
 * against a real docker-registry: blobs pushed without a manifest, and a pushed image whose manifest file is then
 * deleted from the registry's storage. Each becomes a flagged row naming what could not be read; the healthy
 * repository beside them is still reported in full.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir } from '../support/tools.js';

const ready = Boolean(requireTool('docker-registry'));

let reg: RegistryServer;
let cleanup: (() => Promise<void>) | undefined;

interface Row {
  repository: string;
  tags: string[];
  encryptedLayers: number;
  flags: string[];
  problem?: string;
}

/** Uploads one blob to `repository` the way a push starts (POST, then PUT with the digest); no manifest follows. */
async function pushBlobOnly(registry: RegistryServer, repository: string, bytes: Buffer): Promise<void> {
  const start = await request(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  expect(start.statusCode).toBe(202);
  const location = new URL(String(start.headers.location), registry.url);
  location.searchParams.set('digest', `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  const put = await request(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  await put.body.dump();
  expect(put.statusCode).toBe(201);
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-audit-broken-');
  cleanup = dir.cleanup;
  reg = (await startRegistry())!;
  const keys = await makeKeyPair(dir.path, 'ec-p256', 'team');
  const image = await buildOciLayout(path.join(dir.path, 'img'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(161, 1, 8 * 1024) }] }] });
  await imagegateOk(['encrypt', `oci:${image.dir}:v1`, `docker://${reg.host}/ok/app:1`, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '-q']);

  // An interrupted first push: the layer went up, the manifest never did.
  await pushBlobOnly(reg, 'broken/blobs-only', Buffer.from('a layer whose manifest never came'));

  // A tag whose manifest is missing: push, then delete the manifest's bytes from the registry's storage.
  const pushed = await imagegateOk(['encrypt', `oci:${image.dir}:v1`, `docker://${reg.host}/broken/no-manifest:1`, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '-q']);
  const hex = pushed.stdout.trim().replace(/^sha256:/, '');
  await rm(path.join(reg.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), { recursive: true });

  // A catalog entry whose every tag is gone (deleted, or never written).
  await imagegateOk(['encrypt', `oci:${image.dir}:v1`, `docker://${reg.host}/broken/untagged:1`, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '-q']);
  await rm(path.join(reg.dataDir, 'docker/registry/v2/repositories/broken/untagged/_manifests/tags'), { recursive: true });
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('audit of a registry with broken repositories', () => {
  it('flags each repository or tag it cannot read, with the reason, and reports the rest', async () => {
    const r = await imagegate(['audit', reg.host, '--insecure', '--json']);
    expect(r.code, r.stderr).toBe(EXIT_CODES.FLAGGED);
    const report = JSON.parse(r.stdout) as { schemaVersion: number; images: Row[] };
    expect(report.schemaVersion).toBe(1);
    const byRepository = new Map(report.images.map((i) => [i.repository.slice(reg.host.length + 1), i]));
    expect([...byRepository.keys()].sort()).toEqual(['broken/blobs-only', 'broken/no-manifest', 'broken/untagged', 'ok/app']);

    expect(byRepository.get('ok/app')).toMatchObject({ tags: ['1'], encryptedLayers: 1, flags: [] });
    const noManifest = byRepository.get('broken/no-manifest')!;
    expect(noManifest).toMatchObject({ tags: ['1'], flags: ['unreadable-manifest'] });
    expect(noManifest.problem).toMatch(/manifest/);
    // docker-registry lists these repositories in its catalog, then cannot list their tags.
    const blobsOnly = byRepository.get('broken/blobs-only')!;
    expect(blobsOnly).toMatchObject({ tags: [], flags: ['unreadable-repository'] });
    expect(blobsOnly.problem).toMatch(/list tags of .*broken\/blobs-only: .*NAME_UNKNOWN/);
    const untagged = byRepository.get('broken/untagged')!;
    expect(untagged).toMatchObject({ tags: [], flags: ['unreadable-repository'] });
    expect(untagged.problem).toMatch(/list tags of .*broken\/untagged/);
  });

  it('shows the flagged rows in the table, with the reason', async () => {
    const r = await imagegate(['audit', reg.host, '--insecure']);
    expect(r.code, r.stderr).toBe(EXIT_CODES.FLAGGED);
    expect(r.stdout).toMatch(new RegExp(`${reg.host}/broken/no-manifest:1 .*unreadable-manifest`));
    expect(r.stdout).toMatch(new RegExp(`${reg.host}/ok/app:1 .* 1/1 `));
    expect(r.stdout).toMatch(/broken\/blobs-only/);
  });
});
