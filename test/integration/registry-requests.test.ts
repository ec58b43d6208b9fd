/**
 * What audit and rewrap ask of a registry, counted by a proxy in front of docker-registry: one connection pool and one
 * `/v2/` ping for a whole run, each tag's manifest fetched once, and nothing written for an image whose keys do not
 * move (a jwe or plaintext image, or Vault keys already at the latest version). Counts, not timings, so a loaded
 * machine cannot move them; the 10,000-image figures are `npm run bench:scale`'s.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { imagegateOk } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { makeKeyPair, requireTool, skopeo, tempDir } from '../support/tools.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry') && requireTool('skopeo'));

let bao: OpenBaoServer;
let reg: RegistryServer;
let proxy: CountingProxy;
let cleanup: (() => Promise<void>) | undefined;
let env: Record<string, string>;

/** Requests equal to `request`, or starting with it when it ends in `*`. */
const count = (request: string): number =>
  proxy.requests.filter((r) => (request.endsWith('*') ? r.startsWith(request.slice(0, -1)) : r === request)).length;

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-requests-');
  cleanup = dir.cleanup;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  proxy = await startCountingProxy(reg.url);
  await bao.api('POST', 'transit/keys/layers', { derived: true });
  env = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
  const key = await makeKeyPair(path.join(dir.path, 'keys'), 'ec-p256');
  const src = await buildOciLayout(path.join(dir.path, 'src'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(301, 1, 20 * 1024) }, { files: randomLayerFiles(302, 1, 20 * 1024) }] }] });
  const at = (tag: string): string => `docker://${proxy.host}/team/app:${tag}`;
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, at('vault'), '-r', 'vault:layers', '--insecure', '-q'], { env });
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, at('jwe'), '-r', `jwe:${key.publicKeyPath}`, '--insecure', '-q']);
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${src.dir}:v1`, at('plain')]);
  await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', at('vault'), at('vault-too')]);
  // Another team's repository, for the shards.
  await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `docker://${proxy.host}/other/app:1`, '-r', 'vault:layers', '--insecure', '-q'], { env });
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await bao?.stop();
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('requests audit and rewrap make', () => {
  it('audit pings once and fetches each tag once, over one connection pool', async () => {
    proxy.reset();
    const audit = await imagegateOk(['audit', `${proxy.host}/team/app`, '--insecure', '--json']);
    const report = JSON.parse(audit.stdout) as { images: Array<{ tags: string[] }> };
    expect(report.images.map((i) => i.tags.join(',')).sort()).toEqual(['jwe', 'plain', 'vault,vault-too']);
    expect(count('GET /v2/')).toBe(1);
    for (const tag of ['vault', 'vault-too', 'jwe', 'plain']) expect(count(`GET /v2/team/app/manifests/${tag}`), tag).toBe(1);
    // The roots came with the tags; only configs are read besides (two images share theirs).
    expect(count('GET /v2/team/app/manifests/sha256:*')).toBe(0);
  });

  it('rewrap writes nothing when no key moves (jwe, plaintext, or Vault keys at the latest version)', async () => {
    proxy.reset();
    const out = await imagegateOk(['rewrap', `docker://${proxy.host}/team/app`, '--insecure'], { env });
    expect(out.stderr).toContain('nothing written');
    expect(proxy.requests.filter((r) => !r.startsWith('GET ') && !r.startsWith('HEAD '))).toEqual([]);
    expect(count('GET /v2/')).toBe(1);
  });

  it('after a rotation, rewrap pushes only the Vault image: manifests only, no blob, both of its tags', async () => {
    await bao.api('POST', 'transit/keys/layers/rotate', {});
    proxy.reset();
    const out = await imagegateOk(['rewrap', `docker://${proxy.host}/team/app`, '--insecure'], { env });
    expect(out.stderr).toMatch(/:vault,vault-too: rewrapped 2 layer key\(s\)/);
    // In place, the image's blobs are known to be there: no HEAD per blob.
    expect(count('HEAD *')).toBe(0);
    const writes = proxy.requests.filter((r) => !r.startsWith('GET ') && !r.startsWith('HEAD '));
    expect(writes.filter((r) => r.startsWith('POST ') || r.startsWith('PATCH '))).toEqual([]);
    expect(writes.map((r) => r.split(' ')[1]!.replace(/sha256:[0-9a-f]{64}/, 'DIGEST')).sort()).toEqual([
      '/v2/team/app/manifests/DIGEST',
      '/v2/team/app/manifests/vault',
      '/v2/team/app/manifests/vault-too',
    ]);
    expect(count('GET /v2/')).toBe(1);
  });
});

describe.skipIf(!ready)('a registry split into shards (--repositories)', () => {
  it('audit and rewrap take only the repositories of their shard, from the catalog', async () => {
    const audit = await imagegateOk(['audit', proxy.host, '--repositories', 'team/**', '--insecure', '--json']);
    const report = JSON.parse(audit.stdout) as { images: Array<{ repository: string }> };
    expect([...new Set(report.images.map((i) => i.repository))]).toEqual([`${proxy.host}/team/app`]);

    await bao.api('POST', 'transit/keys/layers/rotate', {});
    proxy.reset();
    const out = await imagegateOk(['rewrap', proxy.host, '--repositories', 'other/*', '--insecure'], { env });
    expect(out.stdout).toContain(`docker://${proxy.host}/other/app:1 sha256:`);
    expect(out.stdout).not.toContain('/team/app');
    expect(count('GET /v2/_catalog?n=1000')).toBe(1);
    expect(count('PUT /v2/team/app/manifests/*')).toBe(0);
  });
});
