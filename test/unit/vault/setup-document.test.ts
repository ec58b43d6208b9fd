import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { isImagegateError, type ImagegateError } from '../../../src/errors.js';
import { loadVaultSetupFile, parseVaultSetup } from '../../../src/vault/setup/load-setup.js';

const PUBLIC_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const HEAD = 'apiVersion: imagegate.dev/v1alpha1\nkind: VaultSetup\ntransit:\n  keys: [{ name: shop-layers }, { name: billing-layers }]\n';

function errorOf(text: string): ImagegateError {
  try {
    parseVaultSetup(text, 'setup.yaml');
  } catch (e) {
    if (isImagegateError(e)) return e;
    throw e;
  }
  throw new Error('expected parseVaultSetup to throw');
}

function expectBad(text: string, ...fragments: string[]): void {
  const e = errorOf(text);
  expect(e.code).toBe('USAGE');
  expect(e.exitCode).toBe(2);
  expect(e.message.startsWith('setup.yaml: ')).toBe(true);
  for (const f of fragments) expect(e.message).toContain(f);
}

describe('parseVaultSetup: defaults', () => {
  it('reads a minimal document: the transit mount defaults to transit and nothing else is set up', () => {
    expect(parseVaultSetup(HEAD, 'setup.yaml')).toEqual({
      apiVersion: 'imagegate.dev/v1alpha1',
      kind: 'VaultSetup',
      transit: { mount: 'transit', keys: [{ name: 'shop-layers' }, { name: 'billing-layers' }] },
    });
  });

  it('fills the CI, workload and node defaults', () => {
    const s = parseVaultSetup(
      `${HEAD}ci:
  github: {}
  gitlab: { url: https://gitlab.example }
  roles:
    - { name: shop, keys: [shop-layers], github: { repository: acme/shop, audience: https://vault.example } }
    - { name: billing, keys: [billing-layers], gitlab: { projectId: 42, audience: https://vault.example } }
workloads:
  jwt: { issuer: https://kubernetes.default.svc.cluster.local }
  roles: [{ name: shop, namespaces: [shop], serviceAccounts: [web], keys: [shop-layers] }]
nodes: { keys: [shop-layers] }
operators: {}
`,
      'setup.yaml',
    );
    expect(s.ci).toEqual({
      github: { mount: 'jwt-github', issuer: 'https://token.actions.githubusercontent.com', keys: { oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com' } },
      gitlab: { mount: 'jwt-gitlab', issuer: 'https://gitlab.example', keys: { oidcDiscoveryUrl: 'https://gitlab.example' } },
      token: { ttl: 600, maxTtl: 600 },
      roles: [
        { name: 'shop', keys: ['shop-layers'], provider: { github: { repository: 'acme/shop', audience: 'https://vault.example' } } },
        { name: 'billing', keys: ['billing-layers'], provider: { gitlab: { project: { id: 42 }, refProtected: true, audience: 'https://vault.example' } } },
      ],
    });
    expect(s.workloads).toEqual({
      jwt: { mount: 'jwt-kubernetes', issuer: 'https://kubernetes.default.svc.cluster.local', keys: { oidcDiscoveryUrl: 'https://kubernetes.default.svc.cluster.local' } },
      token: { ttl: 600, maxTtl: 600 },
      roles: [{ name: 'shop', namespaces: ['shop'], serviceAccounts: ['web'], keys: ['shop-layers'], audience: 'vault' }],
    });
    expect(s.nodes).toEqual({ mount: 'approle', role: 'imagegate-node', keys: ['shop-layers'], token: { ttl: 600, maxTtl: 3600 }, secretIdTtl: 0, boundCidrs: [] });
    expect(s.operators).toEqual({ keys: ['shop-layers', 'billing-layers'] });
  });

  it('reads durations as seconds and the three JWT key sources', () => {
    const s = parseVaultSetup(
      `apiVersion: imagegate.dev/v1alpha1
kind: VaultSetup
transit: { mount: transit-prod/, keys: [{ name: k, autoRotatePeriod: 30d }, { name: j, autoRotatePeriod: 1h30m }] }
ci:
  tokenTtl: 5m
  github: { jwksUrl: "http://127.0.0.1:9/jwks", issuer: https://token.actions.githubusercontent.com }
  gitlab: { url: https://gitlab.example, jwtValidationPubkeys: [${JSON.stringify(PUBLIC_PEM)}] }
  roles: []
`,
      'setup.yaml',
    );
    expect(s.transit).toEqual({ mount: 'transit-prod', keys: [{ name: 'k', autoRotatePeriod: 30 * 86400 }, { name: 'j', autoRotatePeriod: 5400 }] });
    expect(s.ci?.token).toEqual({ ttl: 300, maxTtl: 300 });
    expect(s.ci?.github?.keys).toEqual({ jwksUrl: 'http://127.0.0.1:9/jwks' });
    expect(s.ci?.gitlab?.keys).toEqual({ jwtValidationPubkeys: [PUBLIC_PEM] });
  });

  it('reads deploy/vault/setup.example.yaml', async () => {
    const s = await loadVaultSetupFile('deploy/vault/setup.example.yaml');
    expect(s.transit.keys.map((k) => k.name)).toEqual(['shop-layers', 'billing-layers']);
    expect(s.ci?.roles.map((r) => r.name)).toEqual(['shop-images', 'billing-images']);
    expect(s.workloads?.kubernetes).toEqual({ mount: 'kubernetes', host: 'https://kubernetes.default.svc', disableLocalCaJwt: false });
    expect(await readFile('deploy/vault/setup.example.yaml', 'utf8')).toContain('kind: VaultSetup');
  });
});

describe('parseVaultSetup: Kubernetes auth says where Vault gets the API server CA', () => {
  const k8s = (fields: string): string => `${HEAD}workloads: { kubernetes: { host: 'https://203.0.113.10:6443'${fields} }, roles: [] }\n`;

  it('refuses neither caCert nor caCertFromVaultPod, naming caCert and how to get it', () => {
    expectBad(k8s(''), '$.workloads.kubernetes needs caCert', 'caCertFromVaultPod: true', 'certificate-authority-data');
    expectBad(k8s(', disableLocalCaJwt: true'), '$.workloads.kubernetes needs caCert');
  });

  it('refuses the pod CA with disableLocalCaJwt (caCert and caCertFromVaultPod together: vault-setup.test.ts)', () => {
    expectBad(k8s(', caCertFromVaultPod: true, disableLocalCaJwt: true'), '$.workloads.kubernetes.caCertFromVaultPod cannot be combined with disableLocalCaJwt: true');
    expectBad(k8s(', caCertFromVaultPod: "yes"'), '$.workloads.kubernetes.caCertFromVaultPod must be true or false');
  });

  it('reads caCertFromVaultPod: true as Vault\'s own default (no kubernetes_ca_cert)', () => {
    expect(parseVaultSetup(k8s(', caCertFromVaultPod: true'), 'setup.yaml').workloads?.kubernetes).toEqual({ mount: 'kubernetes', host: 'https://203.0.113.10:6443', disableLocalCaJwt: false });
  });
});

describe('parseVaultSetup: refusals name the field', () => {
  it('an unknown field, at any depth', () => {
    expectBad(`${HEAD}operator: {}\n`, '$.operator is not a field this build knows', 'operators');
    expectBad(
      `${HEAD}ci:\n  github: {}\n  roles: [{ name: a, keys: [shop-layers], github: { repository: acme/a, audience: x, refProtected: true } }]\n`,
      '$.ci.roles[0].github.refProtected is not a field this build knows',
    );
    expectBad(`${HEAD}ci:\n  gitlab: { url: https://g.example }\n  roles: [{ name: a, keys: [shop-layers], gitlab: { projectId: 1, audience: x, ref_protected: "true" } }]\n`, '$.ci.roles[0].gitlab.ref_protected is not a field');
  });

  it('version, kind and YAML errors', () => {
    expectBad(HEAD.replace('v1alpha1', 'v2'), '$.apiVersion is "imagegate.dev/v2"');
    expectBad(HEAD.replace('VaultSetup', 'AdmissionPolicy'), '$.kind must be VaultSetup');
    expectBad('apiVersion: [', 'not valid YAML');
    expectBad('', 'empty');
    expectBad('apiVersion: imagegate.dev/v1alpha1\nkind: VaultSetup\n', '$.transit is missing');
  });

  it('keys: names, repeats, references and rotation periods', () => {
    expectBad(HEAD.replace('shop-layers }', 'shop layers }'), '$.transit.keys[0].name must be letters');
    expectBad(HEAD.replace('billing-layers', 'shop-layers'), '$.transit.keys[1].name repeats key "shop-layers"');
    expectBad(HEAD.replace('{ name: shop-layers }', '{ name: shop-layers, autoRotatePeriod: 10m }'), '$.transit.keys[0].autoRotatePeriod must be 0 (off) or at least 1h');
    expectBad(HEAD.replace('{ name: shop-layers }', '{ name: shop-layers, autoRotatePeriod: monthly }'), 'must be a duration such as');
    expectBad(`${HEAD}nodes: { keys: [shop-layers, nope] }\n`, '$.nodes.keys[1] names key "nope", which is not in $.transit.keys');
    expectBad(`${HEAD}nodes: {}\n`, '$.nodes.keys must list the Transit keys');
  });

  it('CI roles: one provider, its mount configured, bindings well-formed', () => {
    const role = (body: string, mounts = 'github: {}\n  gitlab: { url: https://gitlab.example }'): string => `${HEAD}ci:\n  ${mounts}\n  roles: [${body}]\n`;
    expectBad(role('{ name: a, keys: [shop-layers] }'), '$.ci.roles[0] needs exactly one of github or gitlab');
    expectBad(role('{ name: a, keys: [shop-layers], gitlab: { projectId: 1, audience: x } }', 'github: {}'), '$.ci.roles[0].gitlab needs $.ci.gitlab');
    expectBad(role('{ name: a, keys: [shop-layers], github: { repository: acme, audience: x } }'), '$.ci.roles[0].github.repository must be OWNER/REPO, got "acme"');
    expectBad(role('{ name: a, keys: [shop-layers], github: { repository: acme/a, ref: main, audience: x } }'), '$.ci.roles[0].github.ref must be a full ref such as refs/heads/main');
    expectBad(role('{ name: a, keys: [shop-layers], github: { repository: acme/a } }'), '$.ci.roles[0].github.audience is missing');
    expectBad(role('{ name: a, keys: [shop-layers], gitlab: { projectId: 1, projectPath: a/b, audience: x } }'), '$.ci.roles[0].gitlab needs exactly one of projectPath');
    expectBad(role('{ name: a, keys: [shop-layers], gitlab: { projectPath: a/b, refProtected: "yes", audience: x } }'), '$.ci.roles[0].gitlab.refProtected must be true or false, got "yes"');
    expectBad(role('{ name: a, keys: [shop-layers], github: { repository: acme/a, audience: x } }, { name: a, keys: [shop-layers], github: { repository: acme/b, audience: x } }'), '$.ci.roles[1].name repeats role "a"');
    expectBad(role('', 'github: { jwksUrl: "https://x.example/jwks", jwtValidationPubkeys: [] }'), '$.ci.github.jwtValidationPubkeys cannot be combined with $.ci.github.jwksUrl');
    expectBad(role('', 'gitlab: {}'), '$.ci.gitlab.url is missing');
    expectBad(role('', 'github: { jwtValidationPubkeys: ["-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"] }'), '$.ci.github.jwtValidationPubkeys[0] is not a PEM public key');
    expectBad(role('', `github: { jwtValidationPubkeys: [${JSON.stringify(PUBLIC_PEM)}], oidcDiscoveryUrl: "https://x.example" }`), 'cannot be combined with');
    expectBad(role('', 'github: { jwksCaPem: "-----BEGIN CERTIFICATE-----\\nA\\n-----END CERTIFICATE-----" }'), '$.ci.github.jwksCaPem belongs to jwksUrl');
    expectBad(role('', 'github: { mount: jwt }\n  gitlab: { mount: jwt, url: https://g.example }'), '$.ci.gitlab.mount uses auth mount "jwt", which $.ci.github.mount uses already');
  });

  it('workloads and nodes', () => {
    expectBad(`${HEAD}workloads: { roles: [] }\n`, '$.workloads needs kubernetes');
    expectBad(`${HEAD}workloads: { kubernetes: { host: 'kubernetes.default.svc' }, roles: [] }\n`, '$.workloads.kubernetes.host must be a URL');
    expectBad(`${HEAD}workloads: { kubernetes: { host: 'https://k', caCertFromVaultPod: true }, roles: [{ name: a, namespaces: [Shop], serviceAccounts: [web], keys: [shop-layers] }] }\n`, '$.workloads.roles[0].namespaces[0] must be a Kubernetes name');
    expectBad(`${HEAD}workloads: { kubernetes: { host: 'https://k', caCertFromVaultPod: true }, roles: [{ name: a, namespaces: [], serviceAccounts: [web], keys: [shop-layers] }] }\n`, '$.workloads.roles[0].namespaces must list at least one name');
    expectBad(`${HEAD}workloads: { kubernetes: { host: 'https://k', caCert: 'not a pem' }, roles: [] }\n`, '$.workloads.kubernetes.caCert must be a PEM block');
    expectBad(`${HEAD}webhook: { namespace: imagegate, serviceAccount: wh }\n`, '$.webhook is no longer read: the admission webhook never talks to Vault', 'bao policy delete imagegate-webhook');
    expectBad(`${HEAD}nodes: { keys: [shop-layers], boundCidrs: [10.0.0.0] }\n`, '$.nodes.boundCidrs[0] must be a CIDR');
    expectBad(`${HEAD}nodes: { keys: [shop-layers], tokenTtl: 1h, tokenMaxTtl: 10m }\n`, '$.nodes.tokenMaxTtl must be at least tokenTtl (3600s)');
  });
});
