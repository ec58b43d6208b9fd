/**
 * `imagegate vault setup` against a real OpenBao dev server: a setup document becomes Transit keys, policies, JWT,
 * Kubernetes and AppRole auth configs and roles; a second run changes nothing; a changed document changes exactly
 * that item; --dry-run writes nothing. Then the identities it made are used with imagegate's own login code, the
 * way production uses them:
 * - GitHub Actions: JWT auth configured by OIDC discovery, served by a local issuer on 127.0.0.1 (plain http; the
 *   issuer is that URL, since discovery requires the document's issuer to equal the discovery URL);
 * - GitLab: JWT auth with a JWKS URL (the air-gapped alternative to discovery) and the real claim names;
 * - workloads: JWT auth with the cluster's service-account issuer keys (jwt_validation_pubkeys), and Kubernetes
 *   auth with a TokenReview responder standing in for the API server;
 * - nodes: AppRole; the admission webhook: no Vault identity at all (it never talks to Vault).
 * And what is checked before the first write: the shipped example in its air-gapped form, without the Kubernetes
 * API server's CA, and a token that may not write every path, are refused with nothing created.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { planSetup } from '../../src/vault/setup/apply.js';
import { generateSetup, type SetupItem } from '../../src/vault/setup/generate.js';
import { parseVaultSetup } from '../../src/vault/setup/load-setup.js';
import { VaultSession } from '../../src/vault/vault-session.js';
import { gitlabCiToken, githubActionsToken } from '../support/ci-identities.js';
import { buildOciLayout, type BuiltLayout } from '../support/image-builder.js';
import { imagegate, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { CLUSTER_ISSUER, clusterIssuer, serviceAccountToken, type ClusterIssuer } from '../support/service-accounts.js';
import { startTokenReview, type TokenReviewServer } from '../support/token-review.js';
import { requireTool, tempDir, testTempDir } from '../support/tools.js';

const ready = Boolean(findOpenBao() && requireTool('openssl'));
const AUDIENCE = 'https://vault.example';
const GITLAB = 'https://gitlab.example';

let bao: OpenBaoServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let issuerServer: http.Server;
let issuerUrl: string;
let github: KeyObject;
let gitlab: KeyObject;
let cluster: ClusterIssuer;
let tokenReview: TokenReviewServer;
let src: BuiltLayout;
let setupFile: string;
let document: Record<string, any>;

function githubToken(claims: { repository: string; ref: string }): string {
  return githubActionsToken(github, issuerUrl, AUDIENCE, claims);
}

function gitlabToken(claims: { project_path: string; ref_protected: 'true' | 'false' }): string {
  return gitlabCiToken(gitlab, GITLAB, AUDIENCE, claims);
}

function jwtEnv(mount: string, role: string, jwt: string): Record<string, string> {
  return { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_AUTH_MOUNT: mount, IMAGEGATE_VAULT_ROLE: role, IMAGEGATE_VAULT_JWT: jwt };
}

async function kubernetesEnv(namespace: string, name: string): Promise<Record<string, string>> {
  const file = path.join(work, `${namespace}.${name}.token`);
  await writeFile(file, serviceAccountToken(cluster, namespace, name));
  return { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'kubernetes', IMAGEGATE_VAULT_ROLE: namespace === 'imagegate' ? 'imagegate-webhook' : namespace, IMAGEGATE_VAULT_JWT_FILE: file };
}

const rootEnv = (): Record<string, string> => ({ VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken });

async function writeSetup(doc: Record<string, any>, name = 'setup.yaml'): Promise<string> {
  const file = path.join(work, name);
  await writeFile(file, stringify(doc));
  return file;
}

function setup(...args: string[]): ReturnType<typeof imagegate> {
  return imagegate(['vault', 'setup', ...args], { env: rootEnv() });
}

/** Everything the document manages, as Vault reads it back (absent items as null). */
async function snapshot(doc: Record<string, any>): Promise<Record<string, unknown>> {
  const items: SetupItem[] = generateSetup(parseVaultSetup(stringify(doc), 'setup.yaml'));
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const p =
      item.kind === 'policy' ? `sys/policies/acl/${item.name}` : item.kind === 'transit-key' ? `${item.mount}/keys/${item.name}` : item.kind === 'role' || item.kind === 'auth-config' ? item.path : undefined;
    if (p === undefined) continue;
    out[p] = (await bao.api('GET', p).catch(() => null))?.data ?? null;
  }
  return out;
}

function lines(stdout: string, verb: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith(`${verb} `));
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-vault-setup-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  tokenReview = await startTokenReview();
  cluster = clusterIssuer();
  github = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  gitlab = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

  // One local issuer: OIDC discovery + JWKS for the "GitHub" mount, a bare JWKS for the "GitLab" mount.
  const jwk = (key: KeyObject, kid: string): Record<string, unknown> => ({ ...key.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' });
  const publicJwk = (key: KeyObject, kid: string): Record<string, unknown> => {
    const { n, e, kty } = jwk(key, kid) as { n: string; e: string; kty: string };
    return { kty, n, e, kid, alg: 'RS256', use: 'sig' };
  };
  issuerServer = http.createServer((req, res) => {
    const send = (body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/.well-known/openid-configuration') {
      send({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] });
    } else if (req.url === '/jwks') send({ keys: [publicJwk(github, 'github')] });
    else if (req.url === '/gitlab/jwks') send({ keys: [publicJwk(gitlab, 'gitlab')] });
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => issuerServer.listen(0, '127.0.0.1', r));
  issuerUrl = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;

  src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [{ files: [{ path: 'app/a.txt', content: 'a\n' }] }, { files: [{ path: 'app/b.txt', content: 'b\n' }] }] }] });

  document = {
    apiVersion: 'imagegate.dev/v1alpha1',
    kind: 'VaultSetup',
    transit: { mount: 'transit', keys: [{ name: 'shop-layers', autoRotatePeriod: '720h' }, { name: 'billing-layers' }] },
    ci: {
      tokenTtl: '5m',
      github: { mount: 'jwt-github', issuer: issuerUrl },
      gitlab: { mount: 'jwt-gitlab', url: GITLAB, jwksUrl: `${issuerUrl}/gitlab/jwks` },
      roles: [
        { name: 'shop-images', keys: ['shop-layers'], github: { repository: 'acme/shop', ref: 'refs/heads/main', audience: AUDIENCE } },
        { name: 'billing-images', keys: ['billing-layers'], gitlab: { projectPath: 'acme/billing/api', refProtected: true, audience: AUDIENCE } },
      ],
    },
    workloads: {
      jwt: { mount: 'jwt-kubernetes', issuer: CLUSTER_ISSUER, jwtValidationPubkeys: [cluster.publicPem] },
      kubernetes: { mount: 'kubernetes', host: tokenReview.host, caCert: tokenReview.caCert, disableLocalCaJwt: true },
      roles: [
        { name: 'shop', namespaces: ['shop'], serviceAccounts: ['storefront', 'checkout'], keys: ['shop-layers'] },
        { name: 'billing', namespaces: ['billing'], serviceAccounts: ['billing-api'], keys: ['billing-layers'] },
      ],
    },
    nodes: { mount: 'approle', role: 'imagegate-node', keys: ['shop-layers', 'billing-layers'], tokenTtl: '10m' },
    operators: {},
  };
  setupFile = await writeSetup(document);
}, 120_000);

afterAll(async () => {
  await bao?.stop();
  await tokenReview?.close();
  await new Promise((r) => (issuerServer ? issuerServer.close(r) : r(undefined)));
  await cleanup?.();
});

describe.skipIf(!ready)('imagegate vault setup (OpenBao)', () => {
  it('--dry-run reads Vault, prints the plan and writes nothing', async () => {
    const before = await snapshot(document);
    const res = await setup('--file', setupFile, '--dry-run');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^would create {2}auth method jwt-github\/ \(enable jwt\)$/m);
    expect(res.stdout).toMatch(/^unchanged {5}auth method kubernetes\/ \(kubernetes is enabled\)$/m);
    expect(res.stdout).toMatch(/^would create {2}transit key transit\/keys\/shop-layers \(aes256-gcm96, derived, not exportable, deletion not allowed, auto-rotate every 720h\)$/m);
    expect(res.stdout).toMatch(/^would create {2}policy imagegate-ci-shop-images \(update on transit\/encrypt\/shop-layers\)$/m);
    expect(res.stdout).toMatch(/\nvault setup \(dry run, nothing written\): would create \d+, update 0; 3 unchanged\n$/);
    expect(await snapshot(document)).toEqual(before);
    const auths = (await bao.api('GET', 'sys/auth')).data as Record<string, unknown>;
    expect(Object.keys(auths)).not.toContain('jwt-github/');
  });

  it('applies the document; a second run reports every item unchanged and writes nothing', async () => {
    const first = await setup('--file', setupFile, '--write-policies', path.join(work, 'policies'));
    expect(first.code, first.stderr).toBe(0);
    expect(lines(first.stdout, 'updated')).toEqual([]);
    expect(lines(first.stdout, 'created')).toContain('created    role auth/jwt-github/role/shop-images (GitHub Actions acme/shop refs/heads/main → imagegate-ci-shop-images)');
    expect(first.stderr).toContain(`wrote ${path.join(work, 'policies', 'imagegate-node.hcl')}`);
    expect(first.stderr).not.toContain('imagegate-webhook');
    const key = (await bao.api('GET', 'transit/keys/shop-layers')).data as Record<string, unknown>;
    expect(key).toMatchObject({ type: 'aes256-gcm96', derived: true, exportable: false, deletion_allowed: false, auto_rotate_period: 2592000 });

    const applied = await snapshot(document);
    const again = await setup('--file', setupFile);
    expect(again.code, again.stderr).toBe(0);
    expect(lines(again.stdout, 'created')).toEqual([]);
    expect(lines(again.stdout, 'updated')).toEqual([]);
    expect(again.stdout).toMatch(new RegExp(`\\nvault setup: nothing to change; all \\d+ items already match ${setupFile.replaceAll('/', '\\/')}\\n$`));
    expect(await snapshot(document)).toEqual(applied);
    // And the plan itself, in process: not one write in it.
    const session = new VaultSession({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const plan = await planSetup(session, generateSetup(parseVaultSetup(stringify(document), 'setup.yaml')));
    expect(plan.entries.flatMap((e) => e.writes)).toEqual([]);
    expect(again.stdout).not.toContain(bao.rootToken);
  });

  describe('the identities it made work with imagegate, and only for their keys', () => {
    let shopImage: string;
    let billingImage: string;

    it('GitHub Actions (OIDC discovery): the bound repository and ref wrap with their key, and cannot unwrap or use another key', async () => {
      const ci = jwtEnv('jwt-github', 'shop-images', githubToken({ repository: 'acme/shop', ref: 'refs/heads/main' }));
      shopImage = path.join(work, 'shop-enc');
      await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${shopImage}:v1`, '-r', 'vault:transit/shop-layers', '--bind', 'registry.example/acme/shop', '-q'], { env: ci });
      const unwrap = await imagegate(['decrypt', `oci:${shopImage}:v1`, `oci:${await testTempDir('ci-dec-')}:v1`, '--vault'], { env: ci });
      expect(unwrap.code, unwrap.stderr).toBe(7);
      expect(unwrap.stderr).toMatch(/denied transit\/decrypt\/shop-layers/);
      const other = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('ci-other-')}:v1`, '-r', 'vault:transit/billing-layers', '--bind', 'registry.example/acme/shop'], { env: ci });
      expect(other.code, other.stderr).toBe(7);
      expect(other.stderr).toMatch(/denied transit\/encrypt\/billing-layers/);
    });

    it('GitHub Actions: another repository, or another branch, cannot log in', async () => {
      for (const claims of [{ repository: 'acme/evil', ref: 'refs/heads/main' }, { repository: 'acme/shop', ref: 'refs/heads/feature' }]) {
        const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('ci-wrong-')}:v1`, '-r', 'vault:transit/shop-layers', '--bind', 'registry.example/acme/shop'], {
          env: jwtEnv('jwt-github', 'shop-images', githubToken(claims)),
        });
        expect(res.code, res.stderr).toBe(7);
        expect(res.stderr).toMatch(/refused the jwt login at auth\/jwt-github\/login as role "shop-images"/);
      }
    });

    it('GitLab (JWKS URL): a protected ref of the bound project wraps with its key; an unprotected ref cannot log in', async () => {
      const ci = jwtEnv('jwt-gitlab', 'billing-images', gitlabToken({ project_path: 'acme/billing/api', ref_protected: 'true' }));
      billingImage = path.join(work, 'billing-enc');
      await imagegateOk(['encrypt', `oci:${src.dir}:v1`, `oci:${billingImage}:v1`, '-r', 'vault:transit/billing-layers', '--bind', 'registry.example/acme/billing', '-q'], { env: ci });
      const unwrap = await imagegate(['decrypt', `oci:${billingImage}:v1`, `oci:${await testTempDir('gl-dec-')}:v1`, '--vault'], { env: ci });
      expect(unwrap.code, unwrap.stderr).toBe(7);
      const other = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('gl-other-')}:v1`, '-r', 'vault:transit/shop-layers', '--bind', 'registry.example/acme/billing'], { env: ci });
      expect(other.code, other.stderr).toBe(7);
      expect(other.stderr).toMatch(/denied transit\/encrypt\/shop-layers/);
      const unprotected = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('gl-unprot-')}:v1`, '-r', 'vault:transit/billing-layers', '--bind', 'registry.example/acme/billing'], {
        env: jwtEnv('jwt-gitlab', 'billing-images', gitlabToken({ project_path: 'acme/billing/api', ref_protected: 'false' })),
      });
      expect(unprotected.code, unprotected.stderr).toBe(7);
      expect(unprotected.stderr).toMatch(/refused the jwt login at auth\/jwt-gitlab\/login/);
    });

    it('a workload (JWT auth with the cluster issuer) unwraps its key and not another', async () => {
      const env = jwtEnv('jwt-kubernetes', 'shop', serviceAccountToken(cluster, 'shop', 'storefront'));
      const dec = await testTempDir('wl-dec-');
      await imagegateOk(['decrypt', `oci:${shopImage}:v1`, `oci:${dec}:v1`, '--vault'], { env });
      expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
      const other = await imagegate(['decrypt', `oci:${billingImage}:v1`, `oci:${await testTempDir('wl-other-')}:v1`, '--vault'], { env });
      expect(other.code, other.stderr).toBe(7);
      expect(other.stderr).toMatch(/denied transit\/decrypt\/billing-layers/);
      const intruder = await imagegate(['decrypt', `oci:${shopImage}:v1`, `oci:${await testTempDir('wl-intruder-')}:v1`, '--vault'], {
        env: jwtEnv('jwt-kubernetes', 'shop', serviceAccountToken(cluster, 'billing', 'storefront')),
      });
      expect(intruder.code, intruder.stderr).toBe(7);
      expect(intruder.stderr).toMatch(/refused the jwt login/);
    });

    it('a workload (Kubernetes auth, TokenReview) unwraps its key and not another', async () => {
      const env = await kubernetesEnv('billing', 'billing-api');
      const dec = await testTempDir('k8s-dec-');
      await imagegateOk(['decrypt', `oci:${billingImage}:v1`, `oci:${dec}:v1`, '--vault'], { env });
      expect(await layerContentDigests(dec, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
      expect(tokenReview.reviewed).toContain('system:serviceaccount:billing:billing-api');
      const other = await imagegate(['decrypt', `oci:${shopImage}:v1`, `oci:${await testTempDir('k8s-other-')}:v1`, '--vault'], { env });
      expect(other.code, other.stderr).toBe(7);
      expect(other.stderr).toMatch(/denied transit\/decrypt\/shop-layers/);
    });

    it('the node AppRole unwraps every key it lists', async () => {
      const roleId = (await bao.api('GET', 'auth/approle/role/imagegate-node/role-id')).data.role_id as string;
      const secretId = (await bao.api('POST', 'auth/approle/role/imagegate-node/secret-id', {})).data.secret_id as string;
      const env = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'approle', VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secretId };
      for (const image of [shopImage, billingImage]) await imagegateOk(['decrypt', `oci:${image}:v1`, `oci:${await testTempDir('node-dec-')}:v1`, '--vault', '-q'], { env });
    });

    it('the webhook has no Vault identity: its service account cannot log in, by either auth method', async () => {
      const viaJwt = jwtEnv('jwt-kubernetes', 'imagegate-webhook', serviceAccountToken(cluster, 'imagegate', 'imagegate-webhook'));
      for (const env of [viaJwt, await kubernetesEnv('imagegate', 'imagegate-webhook')]) {
        const res = await imagegate(['decrypt', `oci:${shopImage}:v1`, `oci:${await testTempDir('wh-dec-')}:v1`, '--vault'], { env });
        expect(res.code, res.stderr).toBe(7);
        expect(res.stderr).toMatch(/refused the (jwt|kubernetes) login at auth\/(jwt-kubernetes|kubernetes)\/login as role "imagegate-webhook"/);
      }
      expect(await bao.api('GET', 'sys/policies/acl/imagegate-webhook').catch(() => null)).toBeNull();
    });

    it('the operators policy may rotate and rewrap but not encrypt or decrypt', async () => {
      const token = (await bao.api('POST', 'auth/token/create', { policies: ['imagegate-rotate'], ttl: '5m' })).auth.client_token as string;
      const caps = (await bao.api('POST', 'sys/capabilities', {
        token,
        paths: ['transit/keys/shop-layers/rotate', 'transit/rewrap/shop-layers', 'transit/keys/shop-layers', 'transit/decrypt/shop-layers', 'transit/encrypt/shop-layers'],
      })) as Record<string, string[]>;
      expect(caps['transit/keys/shop-layers/rotate']).toEqual(['update']);
      expect(caps['transit/rewrap/shop-layers']).toEqual(['update']);
      expect(caps['transit/keys/shop-layers']).toEqual(['read']);
      expect(caps['transit/decrypt/shop-layers']).toEqual(['deny']);
      expect(caps['transit/encrypt/shop-layers']).toEqual(['deny']);
    });
  });

  it('a token with only deploy/vault/imagegate-setup-admin.hcl can run the whole setup on a fresh Vault', async () => {
    const fresh = (await startOpenBao())!;
    await fresh.api('PUT', 'sys/policies/acl/imagegate-setup-admin', { policy: await readFile('deploy/vault/imagegate-setup-admin.hcl', 'utf8') });
    const token = (await fresh.api('POST', 'auth/token/create', { policies: ['imagegate-setup-admin'], ttl: '10m' })).auth.client_token as string;
    const env = { VAULT_ADDR: fresh.address, VAULT_TOKEN: token };
    const first = await imagegate(['vault', 'setup', '--file', setupFile], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(lines(first.stdout, 'created')).toContain('created    auth method jwt-github/ (enable jwt)');
    const again = await imagegate(['vault', 'setup', '--file', setupFile], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/nothing to change/);
    // Enabling a secrets engine too (the dev server comes with transit/ enabled).
    await fresh.api('DELETE', 'sys/mounts/transit');
    const mount = await imagegate(['vault', 'setup', '--file', setupFile], { env });
    expect(mount.code, mount.stderr).toBe(0);
    expect(lines(mount.stdout, 'created')).toContain('created    secrets engine transit/ (enable transit)');
  });

  it('a changed document updates exactly the changed item, and back', async () => {
    const changed = structuredClone(document);
    changed.ci.roles[0].github.ref = 'refs/heads/release';
    const res = await setup('--file', await writeSetup(changed, 'changed.yaml'));
    expect(res.code, res.stderr).toBe(0);
    expect(lines(res.stdout, 'created')).toEqual([]);
    expect(lines(res.stdout, 'updated')).toEqual(['updated    role auth/jwt-github/role/shop-images (bound_claims differs)']);
    expect((await bao.api('GET', 'auth/jwt-github/role/shop-images')).data.bound_claims).toMatchObject({ ref: ['refs/heads/release'] });

    const tighter = structuredClone(document);
    tighter.nodes.tokenTtl = '5m';
    const back = await setup('--file', await writeSetup(tighter, 'tighter.yaml'));
    expect(back.code, back.stderr).toBe(0);
    expect(lines(back.stdout, 'updated')).toEqual([
      'updated    role auth/jwt-github/role/shop-images (bound_claims differs)',
      'updated    role auth/approle/role/imagegate-node (token_ttl 600 → 300)',
    ]);
    expect((await setup('--file', await writeSetup(tighter, 'tighter.yaml'))).stdout).toMatch(/nothing to change/);
  });

  it('an existing key that is not derived is refused, and nothing else is written', async () => {
    await bao.api('POST', 'transit/keys/legacy', { type: 'aes256-gcm96' });
    const doc = structuredClone(document);
    doc.transit.keys.push({ name: 'legacy' });
    doc.nodes.keys.push('legacy');
    const res = await setup('--file', await writeSetup(doc, 'legacy.yaml'));
    expect(res.code, res.stderr).toBe(4);
    expect(res.stderr).toContain('imagegate: vault setup: nothing was changed, because transit/keys/legacy exists but is not derived');
    expect(res.stderr).toContain('Create a new key');
    expect((await bao.api('GET', 'sys/policies/acl/imagegate-node')).data.policy).not.toContain('legacy');
  });

  it('a document with an unknown field is refused naming it (exit 2), before Vault is asked', async () => {
    const doc = structuredClone(document);
    doc.ci.roles[0].github.branch = 'main';
    const res = await imagegate(['vault', 'setup', '--file', await writeSetup(doc, 'typo.yaml')], { env: { VAULT_ADDR: 'http://127.0.0.1:9', VAULT_TOKEN: 'x' } });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/typo\.yaml: \$\.ci\.roles\[0\]\.github\.branch is not a field this build knows; the fields here are repository, ref, environment, jobWorkflowRef, audience/);
  });

  it('Vault errors go through the usual mapping: a token without rights is exit 7, no Vault is exit 9; the token is never printed', async () => {
    const token = (await bao.api('POST', 'auth/token/create', { policies: ['imagegate-rotate'], ttl: '5m' })).auth.client_token as string;
    const denied = await imagegate(['vault', 'setup', '--file', setupFile], { env: { VAULT_ADDR: bao.address, VAULT_TOKEN: token } });
    expect(denied.code, denied.stderr).toBe(7);
    expect(denied.stderr).toMatch(/denied sys\/mounts/);
    expect(denied.stderr + denied.stdout).not.toContain(token);
    const down = await imagegate(['vault', 'setup', '--file', setupFile], { env: { VAULT_ADDR: 'http://127.0.0.1:9', VAULT_TOKEN: 'secret-token' } });
    expect(down.code).toBe(9);
    expect(down.stderr).toMatch(/cannot reach Vault at http:\/\/127\.0\.0\.1:9/);
    expect(down.stderr).not.toContain('secret-token');
  });
});

/** What a fresh Vault holds of a setup's work: enabled auth methods, imagegate policies, Transit keys. */
async function setupTraces(server: OpenBaoServer): Promise<{ auth: string[]; policies: string[]; keys: string[] }> {
  const auth = Object.keys((await server.api('GET', 'sys/auth')).data as Record<string, unknown>).sort();
  const policies = ((await server.api('LIST', 'sys/policies/acl')).data.keys as string[]).filter((p) => p.startsWith('imagegate-'));
  const keys = ((await server.api('LIST', 'transit/keys').catch(() => null))?.data?.keys ?? []) as string[];
  return { auth, policies, keys };
}

describe.skipIf(!ready)('imagegate vault setup: checked before the first write (a fresh OpenBao)', () => {
  let fresh: OpenBaoServer;
  let empty: Awaited<ReturnType<typeof setupTraces>>;
  beforeAll(async () => {
    fresh = (await startOpenBao())!;
    empty = await setupTraces(fresh);
  });
  afterAll(async () => fresh?.stop());

  /**
   * deploy/vault/setup.example.yaml in the air-gapped form its comments describe: the issuers' keys pasted in instead
   * of discovery, and Kubernetes auth pointed at the API server's own address (Vault runs outside the cluster).
   */
  async function airGappedExample(): Promise<Record<string, any>> {
    const doc = parse(await readFile('deploy/vault/setup.example.yaml', 'utf8')) as Record<string, any>;
    const pem = (key: KeyObject): string => createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
    doc.ci.github.jwtValidationPubkeys = [pem(github)];
    doc.ci.gitlab.jwtValidationPubkeys = [pem(gitlab)];
    doc.workloads.jwt.jwtValidationPubkeys = [cluster.publicPem];
    doc.workloads.kubernetes.host = tokenReview.host;
    delete doc.workloads.kubernetes.caCertFromVaultPod;
    return doc;
  }

  it('the air-gapped example without caCert is refused naming caCert, and nothing is created; with caCert it applies', async () => {
    const env = { VAULT_ADDR: fresh.address, VAULT_TOKEN: fresh.rootToken };
    const doc = await airGappedExample();
    const refused = await imagegate(['vault', 'setup', '--file', await writeSetup(doc, 'air-gapped.yaml')], { env });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain('$.workloads.kubernetes needs caCert');
    expect(refused.stderr).toContain('caCertFromVaultPod: true');
    expect(await setupTraces(fresh)).toEqual(empty);

    doc.workloads.kubernetes.caCert = tokenReview.caCert;
    const both = await imagegate(['vault', 'setup', '--file', await writeSetup({ ...doc, workloads: { ...doc.workloads, kubernetes: { ...doc.workloads.kubernetes, caCertFromVaultPod: true } } }, 'both-ca.yaml')], { env });
    expect(both.code, both.stderr).toBe(2);
    expect(both.stderr).toContain('$.workloads.kubernetes.caCertFromVaultPod cannot be combined with caCert');
    expect(await setupTraces(fresh)).toEqual(empty);

    const applied = await imagegate(['vault', 'setup', '--file', await writeSetup(doc, 'air-gapped-ca.yaml')], { env });
    expect(applied.code, applied.stderr).toBe(0);
    expect(lines(applied.stdout, 'created')).toContain(`created    auth config auth/kubernetes/config (TokenReview at ${tokenReview.host})`);
    expect((await fresh.api('GET', 'auth/kubernetes/config')).data.kubernetes_ca_cert.trim()).toBe(tokenReview.caCert.trim());
  });

  it('a token that may not write every path the plan writes is refused before the first write, naming the paths', async () => {
    const second = (await startOpenBao())!;
    try {
      // The setup admin policy, but roles only readable: without the check, setup got as far as the roles.
      const admin = await readFile('deploy/vault/imagegate-setup-admin.hcl', 'utf8');
      const readOnlyRoles = admin.replace(/(path "auth\/\+\/role\/\*" \{\n\s*capabilities = )\[[^\]]*\]/, '$1["read"]');
      expect(readOnlyRoles).not.toBe(admin);
      await second.api('PUT', 'sys/policies/acl/setup-no-roles', { policy: readOnlyRoles });
      const token = (await second.api('POST', 'auth/token/create', { policies: ['setup-no-roles'], ttl: '5m' })).auth.client_token as string;
      const before = await setupTraces(second);
      const res = await imagegate(['vault', 'setup', '--file', setupFile], { env: { VAULT_ADDR: second.address, VAULT_TOKEN: token } });
      expect(res.code, res.stderr).toBe(7);
      expect(res.stderr).toMatch(/vault setup: nothing was changed, because this token may not write \d+ of the \d+ path\(s\) the plan writes: auth\/jwt-github\/role\/shop-images \(needs create or update; the token has read\)/);
      expect(res.stderr).toContain('imagegate-setup-admin.hcl');
      expect(res.stderr).not.toContain('sys/policies/acl/');
      expect(await setupTraces(second)).toEqual(before);
    } finally {
      await second.stop();
    }
  });

  it('a document with the old webhook section is refused, saying the webhook needs no Vault identity', async () => {
    const doc = { ...document, webhook: { namespace: 'imagegate', serviceAccount: 'imagegate-webhook' } };
    const res = await imagegate(['vault', 'setup', '--file', await writeSetup(doc, 'old-webhook.yaml')], { env: { VAULT_ADDR: fresh.address, VAULT_TOKEN: fresh.rootToken } });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('$.webhook is no longer read: the admission webhook never talks to Vault');
    expect((await setupTraces(fresh)).policies).not.toContain('imagegate-webhook');
  });
});
