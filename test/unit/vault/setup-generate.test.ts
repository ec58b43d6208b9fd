import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPlan, sameValue } from '../../../src/vault/setup/apply.js';
import { generatePolicies, generateSetup, type SetupItem } from '../../../src/vault/setup/generate.js';
import { loadVaultSetupFile, parseVaultSetup } from '../../../src/vault/setup/load-setup.js';

const EXAMPLE = 'deploy/vault/setup.example.yaml';
const POLICY_DIR = 'deploy/vault/policies';

const setup = parseVaultSetup(
  `apiVersion: imagegate.dev/v1alpha1
kind: VaultSetup
transit: { keys: [{ name: shop-layers, autoRotatePeriod: 720h }, { name: billing-layers }] }
ci:
  github: {}
  gitlab: { url: https://gitlab.example, jwksUrl: https://gitlab.example/oauth/discovery/keys }
  roles:
    - { name: shop, keys: [shop-layers], github: { repository: acme/shop, ref: refs/heads/main, environment: prod, audience: https://vault.example } }
    - { name: billing, keys: [billing-layers], gitlab: { projectPath: acme/billing, audience: https://vault.example } }
workloads:
  kubernetes: { host: https://k8s.example:6443, caCertFromVaultPod: true }
  jwt: { issuer: https://k8s.example, jwtValidationPubkeys: [${JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString())}] }
  roles: [{ name: shop, namespaces: [shop, shop-canary], serviceAccounts: [web], keys: [shop-layers] }]
nodes: { keys: [shop-layers, billing-layers], boundCidrs: [10.0.0.0/8] }
operators: { keys: [shop-layers] }
`,
  'setup.yaml',
);

function item(items: SetupItem[], path: string): Extract<SetupItem, { kind: 'role' | 'auth-config' }> {
  const found = items.find((i) => (i.kind === 'role' || i.kind === 'auth-config') && i.path === path);
  if (found === undefined || (found.kind !== 'role' && found.kind !== 'auth-config')) throw new Error(`no item ${path}`);
  return found;
}

describe('generatePolicies: least privilege per identity', () => {
  const policies = new Map(generatePolicies(setup).map((p) => [p.name, p.hcl]));
  const grants = (name: string): string[] => [...policies.get(name)!.matchAll(/^path "([^"]+)" \{\n {2}capabilities = \[([^\]]*)\]\n\}/gm)].map((m) => `${m[1]} ${m[2]}`);

  it('names one policy per identity', () => {
    // None for the admission webhook: it never talks to Vault.
    expect([...policies.keys()]).toEqual(['imagegate-ci-shop', 'imagegate-ci-billing', 'imagegate-workload-shop', 'imagegate-node', 'imagegate-rotate']);
  });

  it('CI may only update transit/encrypt on its own keys (no create, so no upsert; no decrypt)', () => {
    expect(grants('imagegate-ci-shop')).toEqual(['transit/encrypt/shop-layers "update"']);
    expect(grants('imagegate-ci-billing')).toEqual(['transit/encrypt/billing-layers "update"']);
  });

  it('workloads and nodes may only decrypt with their keys', () => {
    expect(grants('imagegate-workload-shop')).toEqual(['transit/decrypt/shop-layers "update"']);
    expect(grants('imagegate-node')).toEqual(['transit/decrypt/shop-layers "update"', 'transit/decrypt/billing-layers "update"']);
  });

  it('operators rotate, configure, rewrap and read, and never encrypt or decrypt', () => {
    expect(grants('imagegate-rotate')).toEqual([
      'transit/keys/shop-layers "read"',
      'transit/keys/shop-layers/rotate "update"',
      'transit/keys/shop-layers/config "update"',
      'transit/rewrap/shop-layers "update"',
    ]);
    expect(policies.get('imagegate-rotate')).not.toMatch(/^path "transit\/(en|de)crypt/m);
  });

  it('the committed deploy/vault/policies are exactly what setup.example.yaml generates today', async () => {
    const generated = generatePolicies(await loadVaultSetupFile(EXAMPLE));
    const files = (await readdir(POLICY_DIR)).filter((f) => f.endsWith('.hcl')).sort();
    expect(files, `regenerate with: imagegate vault setup -f ${EXAMPLE} --write-policies ${POLICY_DIR} --policies-only`).toEqual(generated.map((p) => `${p.name}.hcl`).sort());
    for (const p of generated) expect(await readFile(path.join(POLICY_DIR, `${p.name}.hcl`), 'utf8'), `${p.name}.hcl is stale`).toBe(p.hcl);
  });
});

describe('generateSetup: mounts, keys, auth configs and roles', () => {
  const items = generateSetup(setup);

  it('orders mounts, keys, policies, configs, roles', () => {
    const kinds = items.map((i) => i.kind);
    expect(kinds.lastIndexOf('auth-mount')).toBeLessThan(kinds.indexOf('transit-key'));
    expect(kinds.lastIndexOf('transit-key')).toBeLessThan(kinds.indexOf('policy'));
    expect(kinds.lastIndexOf('policy')).toBeLessThan(kinds.indexOf('auth-config'));
    expect(kinds.lastIndexOf('auth-config')).toBeLessThan(kinds.indexOf('role'));
    expect(items.filter((i) => i.kind === 'auth-mount').map((i) => `${(i as { path: string }).path}:${(i as { type: string }).type}`)).toEqual([
      'jwt-github:jwt',
      'jwt-gitlab:jwt',
      'jwt-kubernetes:jwt',
      'kubernetes:kubernetes',
      'approle:approle',
    ]);
    expect(items.find((i) => i.kind === 'transit-key')).toEqual({ kind: 'transit-key', mount: 'transit', name: 'shop-layers', autoRotatePeriod: 2592000 });
  });

  it('a JWT mount config names exactly one key source and clears the others', () => {
    expect(item(items, 'auth/jwt-github/config').body).toEqual({
      bound_issuer: 'https://token.actions.githubusercontent.com',
      oidc_discovery_url: 'https://token.actions.githubusercontent.com',
      oidc_discovery_ca_pem: '',
      jwks_url: '',
      jwks_ca_pem: '',
      jwt_validation_pubkeys: [],
    });
    expect(item(items, 'auth/jwt-gitlab/config').body).toMatchObject({ oidc_discovery_url: '', jwks_url: 'https://gitlab.example/oauth/discovery/keys', jwt_validation_pubkeys: [] });
    expect(item(items, 'auth/kubernetes/config').body).toEqual({ kubernetes_host: 'https://k8s.example:6443', kubernetes_ca_cert: '', disable_local_ca_jwt: false });
  });

  it('a GitHub role binds audience, repository, ref and environment; a GitLab role the project and protected refs', () => {
    expect(item(items, 'auth/jwt-github/role/shop').body).toMatchObject({
      role_type: 'jwt',
      user_claim: 'repository',
      bound_audiences: ['https://vault.example'],
      bound_claims_type: 'string',
      bound_claims: { repository: ['acme/shop'], ref: ['refs/heads/main'], environment: ['prod'] },
      token_policies: ['imagegate-ci-shop'],
      token_ttl: 600,
      token_max_ttl: 600,
    });
    expect(item(items, 'auth/jwt-gitlab/role/billing').body).toMatchObject({
      role_type: 'jwt',
      user_claim: 'project_path',
      bound_claims: { project_path: ['acme/billing'], ref_protected: ['true'] },
      token_policies: ['imagegate-ci-billing'],
    });
  });

  it('a workload role exists in both workload mounts, bound to every namespace × service account', () => {
    expect(item(items, 'auth/jwt-kubernetes/role/shop').body).toMatchObject({
      role_type: 'jwt',
      user_claim: 'sub',
      bound_audiences: ['vault'],
      bound_claims: { sub: ['system:serviceaccount:shop:web', 'system:serviceaccount:shop-canary:web'] },
      token_policies: ['imagegate-workload-shop'],
    });
    expect(item(items, 'auth/kubernetes/role/shop').body).toEqual({
      bound_service_account_names: ['web'],
      bound_service_account_namespaces: ['shop', 'shop-canary'],
      audience: 'vault',
      token_policies: ['imagegate-workload-shop'],
      token_ttl: 600,
      token_max_ttl: 600,
    });
    expect(items.filter((i) => i.kind === 'role' && i.path.endsWith('/imagegate-webhook'))).toEqual([]);
  });

  it('the node AppRole needs a secret ID and is bound to the node network', () => {
    expect(item(items, 'auth/approle/role/imagegate-node').body).toEqual({
      bind_secret_id: true,
      secret_id_ttl: 0,
      secret_id_num_uses: 0,
      secret_id_bound_cidrs: ['10.0.0.0/8'],
      token_bound_cidrs: ['10.0.0.0/8'],
      token_policies: ['imagegate-node'],
      token_ttl: 600,
      token_max_ttl: 3600,
    });
  });
});

describe('plan comparison and output', () => {
  it('compares what Vault returns with what the document asks, lists and claim maps as sets', () => {
    expect(sameValue(600, 600)).toBe(true);
    expect(sameValue(600, 300)).toBe(false);
    expect(sameValue('', undefined)).toBe(true);
    expect(sameValue('-----BEGIN X-----\nA\n-----END X-----\n', '-----BEGIN X-----\nA\n-----END X-----')).toBe(true);
    expect(sameValue(['a', 'b'], ['b', 'a'])).toBe(true);
    expect(sameValue([], null)).toBe(true);
    expect(sameValue(['a'], ['a', 'b'])).toBe(false);
    expect(sameValue({ repository: ['acme/shop'] }, { repository: 'acme/shop' })).toBe(true);
    expect(sameValue({ repository: ['acme/shop'] }, { repository: 'acme/shop', ref: 'refs/heads/main' })).toBe(false);
    expect(sameValue(false, undefined)).toBe(true);
  });

  it('prints one line per item and a summary; a plan without changes says so', () => {
    const plan = {
      entries: [
        { label: 'policy imagegate-node', action: 'create' as const, detail: 'update on transit/decrypt/k', writes: [{ path: 'sys/policies/acl/imagegate-node', body: {} }] },
        { label: 'role auth/approle/role/imagegate-node', action: 'update' as const, detail: 'token_ttl 300 → 600', writes: [] },
        { label: 'transit key transit/keys/k', action: 'unchanged' as const, detail: 'aes256-gcm96, derived, version 1', writes: [] },
      ],
    };
    expect(formatPlan(plan, { dryRun: false, source: 's.yaml' })).toBe(
      'created    policy imagegate-node (update on transit/decrypt/k)\n' +
        'updated    role auth/approle/role/imagegate-node (token_ttl 300 → 600)\n' +
        'unchanged  transit key transit/keys/k (aes256-gcm96, derived, version 1)\n' +
        'vault setup: created 1, updated 1, 1 unchanged\n',
    );
    expect(formatPlan(plan, { dryRun: true, source: 's.yaml' })).toMatch(/^would create {2}policy imagegate-node[^]*\nvault setup \(dry run, nothing written\): would create 1, update 1; 1 unchanged\n$/);
    expect(formatPlan({ entries: [plan.entries[2]!] }, { dryRun: false, source: 's.yaml' })).toMatch(/\nvault setup: nothing to change; all 1 items already match s\.yaml\n$/);
  });
});
