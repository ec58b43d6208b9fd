/**
 * What audit and rewrap ask of a registry, counted by a proxy in front of docker-registry: one connection pool and one
 * `/v2/` ping for a whole run, each tag's manifest fetched once, and nothing written for an image whose keys do not
 * move (a jwe or plaintext image, or Vault keys already at the latest version). Counts, not timings, so a loaded
 * machine cannot move them; the 10,000-image figures are `npm run bench:scale`'s.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
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

describe.skipIf(!ready)('a registry whose tags cannot move (immutable tags)', () => {
  let frozen: CountingProxy;
  let freeze = false;
  beforeAll(async () => {
    if (!ready) return;
    // As Harbor answers a push that would move an immutable tag: 412 and a DENIED error. Pushes by digest and of
    // new tags still go through.
    frozen = await startCountingProxy(reg.url, (method, url) =>
      freeze && method === 'PUT' && url === '/v2/team/frozen/manifests/1'
        ? { status: 412, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'The tag team/frozen:1 is immutable, cannot be overwritten.' }] }) }
        : undefined,
    );
    const dir = await tempDir('imagegate-frozen-');
    const src = await buildOciLayout(path.join(dir.path, 'src'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(303, 1, 10 * 1024) }] }] });
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `docker://${frozen.host}/team/frozen:1`, '-r', 'vault:layers', '--insecure', '-q'], { env });
    await dir.cleanup();
    freeze = true;
  }, 60_000);
  afterAll(async () => frozen?.close());

  const tagDigest = async (tag: string): Promise<string | undefined> => {
    const res = await fetch(`${reg.url}/v2/team/frozen/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  };

  it('pushes the rewrapped image by digest, leaves the tag, says so and exits 10; with --new-tag-suffix it tags it and exits 0', async () => {
    await bao.api('POST', 'transit/keys/layers/rotate', {});
    const old = await tagDigest('1');
    const refused = await imagegate(['rewrap', `docker://${frozen.host}/team/frozen`, '--insecure'], { env });
    expect(refused.code, refused.stderr).toBe(10);
    expect(refused.stderr).toContain(`docker://${frozen.host}/team/frozen:1: the registry refused to move this tag`);
    expect(refused.stderr).toContain('is immutable, cannot be overwritten');
    expect(refused.stderr).toContain('--new-tag-suffix');
    const rewrapped = refused.stdout.trim().split(' ').pop()!;
    expect(await tagDigest('1')).toBe(old);
    expect(await tagDigest(rewrapped)).toBe(rewrapped);

    const tagged = await imagegate(['rewrap', `docker://${frozen.host}/team/frozen`, '--insecure', '--new-tag-suffix', '-rewrapped'], { env });
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(tagged.stderr).toContain(`pushed as docker://${frozen.host}/team/frozen:1-rewrapped`);
    expect(await tagDigest('1')).toBe(old);
    expect(await tagDigest('1-rewrapped')).toBe(tagged.stdout.trim().split(' ').pop());
  });
});
