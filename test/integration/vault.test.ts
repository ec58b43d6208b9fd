/**
 * Vault as the lock, against a real OpenBao dev server and Debian's docker-registry: layer keys wrapped by a
 * derived Transit key bound to the repository, logins by AppRole, JWT (service-account-shaped tokens minted here,
 * as a cluster would) and Kubernetes auth (a TokenReview responder stands in for the API server), denial by
 * policy, the cross-repository binding, rotation + rewrap + min_decryption_version, audit, a sealed and an
 * unreachable Vault, and the batching promise: one Transit round trip per image.
 */
import { createSign, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/schemes/keyring.js';
import { VaultLayerKeys } from '../../src/crypto/schemes/vault-layer-keys.js';
import { TRANSIT_SESSION, vaultTransitScheme } from '../../src/crypto/schemes/vault-transit.js';
import { decryptImage } from '../../src/ops/decrypt.js';
import { encryptImage } from '../../src/ops/encrypt.js';
import { openDestination, withSource } from '../../src/transport/transports.js';
import { Transit } from '../../src/vault/transit.js';
import { VaultSession } from '../../src/vault/vault-session.js';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { startTokenReview, type TokenReviewServer } from '../support/token-review.js';
import { requireTool, skopeo, tempDir, testTempDir } from '../support/tools.js';
import { clusterIssuer, serviceAccountJwtRole, serviceAccountToken as mintToken, type ClusterIssuer } from '../support/service-accounts.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry') && requireTool('skopeo') && requireTool('openssl'));
const KEY = 'layers';

let bao: OpenBaoServer;
let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let saKey: ClusterIssuer;
let tokenReview: TokenReviewServer | undefined;
let reviewed: string[] = [];
const env = { ci: {} as Record<string, string>, workload: {} as Record<string, string>, k8s: {} as Record<string, string>, root: {} as Record<string, string> };

function serviceAccountToken(namespace: string, name: string, audience = 'vault'): string {
  return mintToken(saKey, namespace, name, audience);
}

function diffIds(layout: BuiltLayout): string[] {
  return layout.images[0]!.layers.map((l) => l.diffId);
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-vault-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(51, 2, 100 * 1024) }, { files: randomLayerFiles(52, 1, 300 * 1024) }, { files: [{ path: 'etc/motd', content: 'hi\n' }] }] }],
  });

  // The lock: a derived AES key, so every repository gets its own key through the Transit context.
  await bao.api('POST', `transit/keys/${KEY}`, { derived: true });
  await bao.api('PUT', 'sys/policies/acl/ci-wrap', { policy: `path "transit/encrypt/${KEY}" { capabilities = ["update"] }` });
  await bao.api('PUT', 'sys/policies/acl/unwrap', { policy: `path "transit/decrypt/${KEY}" { capabilities = ["update"] }` });

  // CI: AppRole.
  await bao.api('POST', 'auth/approle/role/ci', { token_policies: ['ci-wrap'], token_ttl: '10m' });
  const roleId = (await bao.api('GET', 'auth/approle/role/ci/role-id')).data.role_id as string;
  const secretId = (await bao.api('POST', 'auth/approle/role/ci/secret-id', {})).data.secret_id as string;
  env.ci = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'approle', VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secretId };

  // Workloads: JWT auth with the cluster's service-account issuer key.
  saKey = clusterIssuer();
  await serviceAccountJwtRole(bao, saKey, 'web', { namespace: 'apps', name: 'web' }, 'unwrap');
  const jwtFile = path.join(work, 'web.token');
  await writeFile(jwtFile, serviceAccountToken('apps', 'web'));
  env.workload = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_ROLE: 'web', IMAGEGATE_VAULT_JWT_FILE: jwtFile };

  // Kubernetes auth: Vault asks the "API server" (our TokenReview responder) whether the token is genuine.
  tokenReview = await startTokenReview();
  reviewed = tokenReview.reviewed;
  await bao.api('POST', 'auth/kubernetes/config', { kubernetes_host: tokenReview.host, kubernetes_ca_cert: tokenReview.caCert, disable_local_ca_jwt: true });
  await bao.api('POST', 'auth/kubernetes/role/node', {
    bound_service_account_names: ['imagegate-node'],
    bound_service_account_namespaces: ['imagegate'],
    token_policies: ['unwrap'],
    token_ttl: '10m',
  });
  const k8sFile = path.join(work, 'node.token');
  await writeFile(k8sFile, serviceAccountToken('imagegate', 'imagegate-node'));
  env.k8s = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'kubernetes', IMAGEGATE_VAULT_ROLE: 'node', IMAGEGATE_VAULT_JWT_FILE: k8sFile };
  env.root = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };
}, 120_000);

afterAll(async () => {
  await bao?.stop();
  await reg?.stop();
  await tokenReview?.close();
  await cleanup?.();
});

const registryArgs = ['--insecure'];

describe.skipIf(!ready)('Vault Transit recipients (OpenBao)', () => {
  const repo = (): string => `${reg.host}/team/app`;

  it('CI encrypts with vault: via AppRole; a workload decrypts via JWT auth; inspect shows key, version and binding', async () => {
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `docker://${repo()}:1`, '-r', `vault:transit/${KEY}`, ...registryArgs, '-q'], { env: env.ci });
    const report = (await imagegateOk(['inspect', `docker://${repo()}:1`, ...registryArgs])).stdout;
    expect(report).toContain(`provider.imagegate[vault-transit transit/keys/${KEY} v1 bound to ${repo()}]`);
    const dec = await testTempDir('vault-dec-');
    await imagegateOk(['decrypt', `docker://${repo()}:1`, `oci:${dec}:v1`, '--vault', ...registryArgs], { env: env.workload });
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('Kubernetes auth (TokenReview) unwraps too', async () => {
    const dec = await testTempDir('vault-k8s-');
    await imagegateOk(['decrypt', `docker://${repo()}:1`, `oci:${dec}:v1`, '--vault', ...registryArgs], { env: env.k8s });
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
    expect(reviewed).toContain('system:serviceaccount:imagegate:imagegate-node');
  });

  it('policy denial names the path and the capability needed (CI may wrap but not unwrap)', async () => {
    const res = await imagegate(['decrypt', `docker://${repo()}:1`, `oci:${await testTempDir('denied-')}:v1`, '--vault', ...registryArgs], { env: env.ci });
    expect(res.code).toBe(7);
    expect(res.stderr).toMatch(/denied transit\/decrypt\/layers .*needs? "update" on path "transit\/decrypt\/layers"/);
  });

  it('a workload identity that is not bound to the role cannot log in', async () => {
    const other = path.join(work, 'other.token');
    await writeFile(other, serviceAccountToken('apps', 'intruder'));
    const res = await imagegate(['decrypt', `docker://${repo()}:1`, `oci:${await testTempDir('intruder-')}:v1`, '--vault', ...registryArgs], {
      env: { ...env.workload, IMAGEGATE_VAULT_JWT_FILE: other },
    });
    expect(res.code).toBe(7);
    expect(res.stderr).toMatch(/refused the jwt login at auth\/jwt\/login as role "web"/);
  });

  it('the wrapped key does not unwrap in another repository until it is re-bound there', async () => {
    const other = `${reg.host}/other/app`;
    await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${repo()}:1`, `docker://${other}:1`]);
    const res = await imagegate(['decrypt', `docker://${other}:1`, `oci:${await testTempDir('moved-')}:v1`, '--vault', ...registryArgs], { env: env.workload });
    expect(res.code).toBe(4);
    expect(res.stderr).toContain(`bound to repository ${repo()}, but the image is in ${other}`);
    // The item's own claim is not trusted either: Vault itself refuses the other repository's context.
    const session = new VaultSession({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const keys = new VaultLayerKeys(new Transit(session));
    const forged = await withSource(`docker://${repo()}:1`, async (s) => {
      const m = JSON.parse((await s.readManifest(await s.rootDescriptor())).toString()) as { layers: Array<{ annotations: Record<string, string> }> };
      return JSON.parse(Buffer.from(m.layers[0]!.annotations['org.opencontainers.image.enc.keys.provider.imagegate']!, 'base64').toString());
    }, { registry: { insecure: true } });
    await expect(keys.unwrap({ ...forged, binding: other }, other, 'forged')).rejects.toMatchObject({ code: 'NO_MATCHING_KEY' });

    await imagegateOk(['rewrap', `docker://${other}:1`, '--bind', other, ...registryArgs], { env: env.root });
    const dec = await testTempDir('rebound-');
    await imagegateOk(['decrypt', `docker://${other}:1`, `oci:${dec}:v1`, '--vault', ...registryArgs], { env: env.workload });
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
  });

  it('rotation: rewrap moves every tag to the new version without uploading a blob; min_decryption_version retires the old', async () => {
    const rotated = `${reg.host}/team/rotated`;
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `docker://${rotated}:1`, '-r', `vault:${KEY}`, ...registryArgs, '-q'], { env: env.ci });
    await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${rotated}:1`, `docker://${rotated}:latest`]);
    // A copy kept aside as an attacker (or a forgotten mirror) would: still wrapped with version 1.
    const stale = await testTempDir('stale-');
    await skopeo(['copy', '--src-tls-verify=false', `docker://${rotated}:1`, `oci:${stale}:v1`]);
    const before = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${rotated}:1`])).stdout) as { layers: Array<{ digest: string }> };

    await bao.api('POST', `transit/keys/${KEY}/rotate`, {});
    const out = await imagegateOk(['rewrap', `docker://${rotated}`, ...registryArgs], { env: env.root });
    expect(out.stderr).toMatch(/:1,latest: rewrapped 3 layer key\(s\)/);
    const after = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${rotated}:latest`])).stdout) as { layers: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(after.layers.map((l) => l.digest)).toEqual(before.layers.map((l) => l.digest));
    for (const l of after.layers) {
      const item = JSON.parse(Buffer.from(l.annotations['org.opencontainers.image.enc.keys.provider.imagegate']!, 'base64').toString()) as { version: number };
      expect(item.version).toBe(2);
    }

    await bao.api('POST', `transit/keys/${KEY}/config`, { min_decryption_version: 2 });
    try {
      const dec = await testTempDir('rotated-');
      await imagegateOk(['decrypt', `docker://${rotated}:latest`, `oci:${dec}:v1`, '--vault', ...registryArgs], { env: env.workload });
      expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(src));
      const res = await imagegate(['decrypt', `oci:${stale}:v1`, `oci:${await testTempDir('stale-dec-')}:v1`, '--vault'], { env: env.workload });
      expect(res.code).toBe(4);
      expect(res.stderr).toMatch(/retired/);

      const audit = await imagegate(['audit', reg.host, '--min-version', '2', '--protect', `${reg.host}/team/**`, '--json', '--vault', ...registryArgs], { env: env.root });
      expect(audit.code, audit.stderr).toBe(10);
      const report = JSON.parse(audit.stdout) as { images: Array<{ repository: string; tags: string[]; vaultKeys: Array<{ version: number }>; flags: string[] }> };
      const rotatedRow = report.images.find((i) => i.repository === rotated)!;
      expect(rotatedRow.tags).toEqual(['1', 'latest']);
      expect(rotatedRow.vaultKeys.map((k) => k.version)).toEqual([2]);
      expect(rotatedRow.flags).toEqual([]);
      const appRow = report.images.find((i) => i.repository === repo())!;
      expect(appRow.flags).toContain(`key-version-below-minimum:transit/keys/${KEY}:v1<v2`);
      expect(appRow.flags).toContain(`key-version-retired:transit/keys/${KEY}:v1`);
    } finally {
      await bao.api('POST', `transit/keys/${KEY}/config`, { min_decryption_version: 1 });
    }
  });

  it('audit flags a plaintext image in a protected repository', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${src.dir}:v1`, `docker://${reg.host}/team/leaked:1`]);
    const audit = await imagegate(['audit', `${reg.host}/team/leaked`, '--protect', `${reg.host}/team/*`, ...registryArgs]);
    expect(audit.code).toBe(10);
    expect(audit.stdout).toMatch(/team\/leaked:1 .* 0\/3 .*plaintext-in-protected-repository/);
  });

  it('a missing Transit key and an unreachable Vault are named', async () => {
    // CI may use keys but not create them (no "create" capability, so Transit cannot upsert a typo into a new key).
    const missing = await imagegate(['encrypt', `oci:${src.dir}:v1`, `docker://${repo()}:nokey`, '-r', 'vault:transit/no-such-key', ...registryArgs], { env: env.ci });
    expect(missing.code, missing.stderr).toBe(7);
    expect(missing.stderr).toMatch(/denied transit\/encrypt\/no-such-key/);
    const session = new VaultSession({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const keys = new VaultLayerKeys(new Transit(session));
    const item = { v: 1 as const, mount: 'transit', key: 'no-such-key', version: 1, ciphertext: 'vault:v1:AAAA', binding: 'reg/x' };
    await expect(keys.unwrap(item, 'reg/x', 'layer 0')).rejects.toMatchObject({ code: 'BAD_KEY', message: expect.stringMatching(/has no Transit key for transit\/decrypt\/no-such-key/) });
    const down = await imagegate(['decrypt', `docker://${repo()}:1`, `oci:${await testTempDir('down-')}:v1`, '--vault', ...registryArgs], {
      env: { VAULT_ADDR: 'http://127.0.0.1:9', VAULT_TOKEN: 'x' },
    });
    expect(down.code).toBe(9);
    expect(down.stderr).toMatch(/cannot reach Vault at http:\/\/127\.0\.0\.1:9/);
  });

  it('GitHub Actions: the OIDC token comes from the runtime endpoint, and Vault binds the role to the repository', async () => {
    // A second JWT mount for the CI issuer, as one mount backs one issuer; the "runtime" serves a token it signed.
    const ci = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await bao.api('POST', 'sys/auth/jwt-github', { type: 'jwt' });
    await bao.api('POST', 'auth/jwt-github/config', {
      jwt_validation_pubkeys: [ci.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
      bound_issuer: 'https://token.actions.githubusercontent.com',
    });
    await bao.api('POST', 'auth/jwt-github/role/images', {
      role_type: 'jwt',
      user_claim: 'repository',
      bound_audiences: ['imagegate'],
      bound_claims: { repository: 'org/images', ref: 'refs/heads/main' },
      token_policies: ['ci-wrap'],
      token_ttl: '5m',
    });
    const asked: string[] = [];
    const runtime = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      asked.push(`${req.headers.authorization} ${url.searchParams.get('audience')}`);
      const now = Math.floor(Date.now() / 1000);
      const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      const body = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({
        iss: 'https://token.actions.githubusercontent.com',
        aud: url.searchParams.get('audience'),
        sub: 'repo:org/images:ref:refs/heads/main',
        repository: 'org/images',
        ref: 'refs/heads/main',
        iat: now,
        nbf: now,
        exp: now + 300,
      })}`;
      const sig = createSign('SHA256').update(body).sign({ key: ci.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: `${body}.${sig}` }));
    });
    await new Promise<void>((r) => runtime.listen(0, '127.0.0.1', r));
    try {
      const port = (runtime.address() as AddressInfo).port;
      await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `docker://${repo()}:gha`, '-r', `vault:${KEY}`, ...registryArgs, '-q'], {
        env: {
          VAULT_ADDR: bao.address,
          IMAGEGATE_VAULT_AUTH: 'jwt',
          IMAGEGATE_VAULT_AUTH_MOUNT: 'jwt-github',
          IMAGEGATE_VAULT_ROLE: 'images',
          IMAGEGATE_VAULT_AUDIENCE: 'imagegate',
          ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${port}/token?api-version=2.0`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-secret',
        },
      });
      expect(asked).toEqual(['bearer runner-secret imagegate']);
    } finally {
      await new Promise((r) => runtime.close(r));
    }
  });

  it('a long-running session logs in again when its token expires, and renews it before then', async () => {
    await bao.api('POST', 'auth/approle/role/short', { token_policies: ['ci-wrap'], token_ttl: '3s', token_max_ttl: '3s' });
    const roleId = (await bao.api('GET', 'auth/approle/role/short/role-id')).data.role_id as string;
    const secretId = (await bao.api('POST', 'auth/approle/role/short/secret-id', {})).data.secret_id as string;
    const session = new VaultSession({ address: bao.address, auth: { method: 'approle', mount: 'approle', roleId, secretId } });
    const transit = new Transit(session);
    const wrapOne = async (): Promise<void> => {
      const [r] = await transit.encrypt({ mount: 'transit', name: KEY }, [{ plaintext: Buffer.from('k'), context: Buffer.from('c') }]);
      expect(r?.ok).toBe(true);
    };
    await wrapOne();
    expect(session.roundTrips).toBe(2); // login + encrypt
    await new Promise((r) => setTimeout(r, 3500));
    await wrapOne(); // the token has expired: ensureLoggedIn sees it and logs in again first
    expect(session.roundTrips).toBe(4);

    // Renewal: a renewable token with room to grow is renewed at two thirds of its life, without a new login.
    // Margins of seconds on each side, so a loaded machine's late timers do not decide the outcome.
    const ttlMs = 10_000;
    await bao.api('POST', 'auth/approle/role/renewable', { token_policies: ['ci-wrap'], token_ttl: `${ttlMs / 1000}s`, token_max_ttl: '1m' });
    const rid = (await bao.api('GET', 'auth/approle/role/renewable/role-id')).data.role_id as string;
    const sid = (await bao.api('POST', 'auth/approle/role/renewable/secret-id', {})).data.secret_id as string;
    const renewing = new VaultSession({ address: bao.address, auth: { method: 'approle', mount: 'approle', roleId: rid, secretId: sid } });
    const loggedInAt = Date.now();
    await renewing.ensureLoggedIn();
    const loginTrips = renewing.roundTrips;
    const errors: string[] = [];
    renewing.startRenewal((e) => errors.push(e.message));
    // Until the renewal has gone out, then past the first token's own end: only a renewed token still works there.
    while (renewing.roundTrips === loginTrips) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, Math.max(0, loggedInAt + ttlMs + 500 - Date.now())));
    renewing.stopRenewal();
    expect(errors).toEqual([]);
    const trips = renewing.roundTrips;
    await new Transit(renewing).encrypt({ mount: 'transit', name: KEY }, [{ plaintext: Buffer.from('k'), context: Buffer.from('c') }]);
    expect(renewing.roundTrips, 'the renewed token still works, with no new login').toBe(trips + 1);
  });

  it('wraps and unwraps a 20-layer image in one Transit batch each (plus, for wrapping, one derived-key probe per key)', async () => {
    const twenty = await buildOciLayout(path.join(work, 'twenty'), {
      tag: 'v1',
      images: [{ layers: Array.from({ length: 20 }, (_, i) => ({ files: [{ path: `layer/${i}.txt`, content: `layer ${i}\n` }] })) }],
    });
    const session = new VaultSession({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const keys = new VaultLayerKeys(new Transit(session));
    const transitKeyring = new Keyring().provide(TRANSIT_SESSION, async () => keys);
    const enc = await testTempDir('twenty-enc-');
    let started = performance.now();
    await withSource(`oci:${twenty.dir}:v1`, async (s) =>
      encryptImage(s, await openDestination(`oci:${enc}:v1`), { recipients: [await vaultTransitScheme.recipients([`transit/${KEY}`], { binding: 'reg.example/twenty', keyring: transitKeyring })] }),
    );
    const wrapMs = performance.now() - started;
    // The batch, then the probe that shows the key is derived (derived-key.ts): two requests for twenty layers.
    expect(session.roundTrips).toBe(2);

    started = performance.now();
    const dec = await testTempDir('twenty-dec-');
    await withSource(`oci:${enc}:v1`, async (s) => decryptImage(s, await openDestination(`oci:${dec}:v1`), { keyring: transitKeyring }));
    const unwrapMs = performance.now() - started;
    // Unwrapping probes inside the batch itself: one request.
    expect(session.roundTrips).toBe(3);
    expect(await layerContentDigests(dec, 'v1')).toEqual(diffIds(twenty));
    // The Vault part alone: one batch of 20 layer keys (193-byte private options each) each way.
    const transit = new Transit(session);
    const items = Array.from({ length: 20 }, () => ({ plaintext: Buffer.alloc(193, 1), context: Buffer.from('imagegate:v1:reg.example/twenty') }));
    started = performance.now();
    const wrappedKeys = await transit.encrypt({ mount: 'transit', name: KEY }, items);
    const batchWrapMs = performance.now() - started;
    started = performance.now();
    await transit.decrypt({ mount: 'transit', name: KEY }, wrappedKeys.map((w, i) => ({ ciphertext: w.ok ? w.value.ciphertext : '', context: items[i]!.context })));
    const batchUnwrapMs = performance.now() - started;
    process.stderr.write(
      `vault: 20-layer image: wrap 1 batch + 1 probe (${batchWrapMs.toFixed(1)} ms for the batch; ${wrapMs.toFixed(0)} ms for the whole encrypt), ` +
        `unwrap 1 round trip (${batchUnwrapMs.toFixed(1)} ms; ${unwrapMs.toFixed(0)} ms for the whole decrypt)\n`,
    );
  });

  it('encrypt refuses a Transit key that is not derived, as a CI identity that may only encrypt (no read on the key)', async () => {
    // A key made without derived=true ignores the Transit context, so the repository binding would mean nothing.
    await bao.api('POST', 'transit/keys/legacy', { type: 'aes256-gcm96' });
    await bao.api('PUT', 'sys/policies/acl/ci-legacy', { policy: 'path "transit/encrypt/legacy" { capabilities = ["update"] }' });
    await bao.api('POST', 'auth/approle/role/ci-legacy', { token_policies: ['ci-legacy'], token_ttl: '10m' });
    const roleId = (await bao.api('GET', 'auth/approle/role/ci-legacy/role-id')).data.role_id as string;
    const secretId = (await bao.api('POST', 'auth/approle/role/ci-legacy/secret-id', {})).data.secret_id as string;
    const ciLegacy = { ...env.ci, VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secretId };
    const out = await testTempDir('legacy-enc-');
    const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${out}:v1`, '-r', 'vault:transit/legacy', '--bind', `${reg.host}/team/legacy`, '-q'], { env: ciLegacy });
    expect(res.code, res.stderr).toBe(4);
    expect(res.stderr).toContain('transit/keys/legacy is not a derived Transit key, so it cannot bind layer keys to their repository');
    expect(res.stderr).toContain('`vault write transit/keys/NEW_NAME derived=true`');
    expect(res.stderr).toContain('`imagegate vault setup`');
    // Nothing was written; and the same identity still encrypts with a derived key it may use (no read needed).
    await expect(readManifestFor(out, 'v1')).rejects.toThrow();
    await bao.api('POST', 'transit/keys/derived-ci', { derived: true });
    await bao.api('PUT', 'sys/policies/acl/ci-legacy', { policy: 'path "transit/encrypt/derived-ci" { capabilities = ["update"] }' });
    await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('derived-enc-')}:v1`, '-r', 'vault:transit/derived-ci', '--bind', `${reg.host}/team/legacy`, '-q'], { env: ciLegacy });
  });

  it('a sealed Vault is reported as sealed (last: it stays sealed)', async () => {
    await bao.api('PUT', 'sys/seal');
    const res = await imagegate(['decrypt', `docker://${repo()}:1`, `oci:${await testTempDir('sealed-')}:v1`, '--vault', ...registryArgs], { env: env.root });
    expect(res.code).toBe(9);
    expect(res.stderr).toMatch(/is sealed/);
  });
});
