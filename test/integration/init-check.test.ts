/**
 * `imagegate init --check` (node runtime model) as the injected init container runs it: logging in to a real
 * OpenBao with a projected service-account token minted as a cluster would, and unwrapping every encrypted layer
 * key of the pod's platform from a real docker-registry, without reading layer bytes.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { CLUSTER_ISSUER, clusterIssuer, serviceAccountToken, type ClusterIssuer } from '../support/service-accounts.js';
import { makeKeyPair, requireTool, tempDir } from '../support/tools.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry'));

let bao: OpenBaoServer;
let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let issuer: ClusterIssuer;
const pinned: Record<string, string> = {};

/** The environment the webhook gives the check container, with a token for `namespace/name`. */
async function podEnv(namespace: string, name: string, role = 'web'): Promise<Record<string, string>> {
  const tokenFile = path.join(work, `${namespace}-${name}.token`);
  await writeFile(tokenFile, serviceAccountToken(issuer, namespace, name));
  return { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_ROLE: role, IMAGEGATE_VAULT_JWT_FILE: tokenFile };
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-init-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  const root = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
  await bao.api('POST', 'transit/keys/prod', { derived: true });
  await bao.api('POST', 'transit/keys/arm-only', { derived: true });
  await bao.api('PUT', 'sys/policies/acl/unwrap-prod', { policy: 'path "transit/decrypt/prod" { capabilities = ["update"] }' });
  issuer = clusterIssuer();
  await bao.api('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [issuer.publicPem], bound_issuer: CLUSTER_ISSUER });
  await bao.api('POST', 'auth/jwt/role/web', { role_type: 'jwt', user_claim: 'sub', bound_audiences: ['vault'], bound_subject: 'system:serviceaccount:shop:web', token_policies: ['unwrap-prod'], token_ttl: '5m' });
  await bao.api('POST', 'auth/jwt/role/batch', { role_type: 'jwt', user_claim: 'sub', bound_audiences: ['vault'], bound_subject: 'system:serviceaccount:batch:runner', token_policies: ['default'], token_ttl: '5m' });

  const push = async (layout: string, repoTag: string, args: string[]): Promise<void> => {
    const out = await imagegateOk(['encrypt', `oci:${layout}:v1`, `docker://${reg.host}/${repoTag}`, ...args, '--insecure', '-q'], { env: root });
    pinned[repoTag] = `docker://${reg.host}/${repoTag.split(':')[0]}@${out.stdout.trim()}`;
  };
  const twenty = await buildOciLayout(path.join(work, 'twenty'), {
    tag: 'v1',
    images: [{ layers: Array.from({ length: 20 }, (_, i) => ({ files: [{ path: `l/${i}`, content: `layer ${i}\n` }] })) }],
  });
  await push(twenty.dir, 'prod/twenty:1', ['-r', 'vault:prod']);
  const multi = await buildOciLayout(path.join(work, 'multi'), {
    tag: 'v1',
    images: [
      { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ files: randomLayerFiles(91, 1, 10 * 1024) }, { files: randomLayerFiles(92, 1, 10 * 1024) }] },
      { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ files: randomLayerFiles(93, 1, 10 * 1024) }] },
    ],
  });
  // amd64 wrapped with the key the pod may use; arm64 with one it may not.
  await push(multi.dir, 'prod/multi:1', ['-r', 'vault:prod', '--platform', 'linux/amd64']);
  await imagegateOk(['encrypt', pinned['prod/multi:1']!, `docker://${reg.host}/prod/multi:2`, '-r', 'vault:arm-only', '--platform', 'linux/arm64', '--insecure', '-q'], { env: root });
  const second = await imagegateOk(['inspect', '--json', `docker://${reg.host}/prod/multi:2`, '--insecure']);
  pinned['prod/multi:2'] = `docker://${reg.host}/prod/multi@${(JSON.parse(second.stdout) as { digest: string }).digest}`;
  const jwe = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  await push(twenty.dir, 'prod/jwe-only:1', ['-r', `jwe:${jwe.publicKeyPath}`]);
}, 180_000);

afterAll(async () => {
  await bao?.stop();
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('imagegate init --check', () => {
  it('an allowed pod identity unwraps all 20 layer keys and exits 0', async () => {
    const started = performance.now();
    const res = await imagegateOk(['init', '--check', pinned['prod/twenty:1']!, '--insecure'], { env: await podEnv('shop', 'web') });
    const ms = performance.now() - started;
    expect(res.stderr).toMatch(/20 of 20 layer key\(s\) unwrapped \(transit\/keys\/prod v1\)/);
    process.stderr.write(`init --check of a 20-layer image: ${ms.toFixed(0)} ms (whole process: node start, login, manifest, one Transit batch)\n`);
  });

  it('a service account the Vault role is not bound to cannot log in: exit 7', async () => {
    const res = await imagegate(['init', '--check', pinned['prod/twenty:1']!, '--insecure'], { env: { ...(await podEnv('shop', 'intruder')) } });
    expect(res.code).toBe(7);
    expect(res.stderr).toMatch(/refused the jwt login at auth\/jwt\/login as role "web"/);
  });

  it('an identity that logs in but whose policy lacks the key is denied, naming the path', async () => {
    const res = await imagegate(['init', '--check', pinned['prod/twenty:1']!, '--insecure'], { env: await podEnv('batch', 'runner', 'batch') });
    expect(res.code).toBe(7);
    expect(res.stderr).toMatch(/layer \d+ .*denied transit\/decrypt\/prod/);
  });

  it("checks the pod's platform only: amd64 passes, arm64 (another key) fails, naming the layer and key", async () => {
    const env = await podEnv('shop', 'web');
    await imagegateOk(['init', '--check', pinned['prod/multi:2']!, '--platform', 'linux/amd64', '--insecure'], { env });
    const arm = await imagegate(['init', '--check', pinned['prod/multi:2']!, '--platform', 'linux/arm64', '--insecure'], { env });
    expect(arm.code).toBe(7);
    expect(arm.stderr).toMatch(/linux\/arm64 layer 0 .*transit\/decrypt\/arm-only/);
    const none = await imagegate(['init', '--check', pinned['prod/multi:2']!, '--platform', 'linux/s390x', '--insecure'], { env });
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no image for linux\/s390x \(it has linux\/amd64, linux\/arm64\)/);
  });

  it('a layer wrapped only with jwe cannot be proven with the pod identity', async () => {
    const res = await imagegate(['init', '--check', pinned['prod/jwe-only:1']!, '--insecure'], { env: await podEnv('shop', 'web') });
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/has no Vault-wrapped key/);
  });
});
