import type { CiRole, JwtMount, TokenLifetime, VaultSetup, WorkloadRole } from './types.js';

/**
 * The Vault objects a setup document stands for, as data: pure functions, no Vault. `planSetup` compares them with
 * what a server has; `--write-policies` writes the policies' HCL; deploy/vault/policies is this output for
 * deploy/vault/setup.example.yaml.
 *
 * Least privilege, per identity:
 * - CI (`imagegate-ci-ROLE`): `update` on `transit/encrypt/KEY` only. Not `create`, so encrypt cannot upsert a
 *   misspelt key into a new one; no decrypt, so a pipeline can wrap layer keys but never unwrap them.
 * - workloads (`imagegate-workload-ROLE`) and nodes (`imagegate-node`): `update` on `transit/decrypt/KEY` only.
 * - the admission webhook: nothing. It never talks to Vault (the key version it judges is in the image's Transit
 *   ciphertext), so it has no role and no policy.
 * - operators (`imagegate-rotate`): rotate, configure (min_decryption_version), rewrap and read the keys; no
 *   encrypt or decrypt, so rotation never sees a layer key.
 */

export type VaultValue = string | number | boolean | string[] | Record<string, string | string[]>;

export type SetupItem =
  | { kind: 'secrets-mount' | 'auth-mount'; path: string; type: string; description: string }
  | { kind: 'transit-key'; mount: string; name: string; autoRotatePeriod?: number }
  | { kind: 'policy'; name: string; hcl: string }
  /** `auth/M/config` or `auth/M/role/R`: written with POST, compared field by field with what a read returns. */
  | { kind: 'auth-config' | 'role'; path: string; body: Record<string, VaultValue>; summary: string };

export interface GeneratedPolicy {
  name: string;
  hcl: string;
}

const POLICY_PREFIX = 'imagegate-';

/** Every item, in the order they must be applied: mounts, keys, policies, auth configs, roles. */
export function generateSetup(setup: VaultSetup): SetupItem[] {
  const items: SetupItem[] = [{ kind: 'secrets-mount', path: setup.transit.mount, type: 'transit', description: 'imagegate: layer-key wrapping keys' }];
  const jwtMounts: Array<{ mount: JwtMount; what: string }> = [];
  if (setup.ci?.github !== undefined) jwtMounts.push({ mount: setup.ci.github, what: 'imagegate: GitHub Actions OIDC (CI wraps layer keys)' });
  if (setup.ci?.gitlab !== undefined) jwtMounts.push({ mount: setup.ci.gitlab, what: 'imagegate: GitLab CI id_tokens (CI wraps layer keys)' });
  if (setup.workloads?.jwt !== undefined) jwtMounts.push({ mount: setup.workloads.jwt, what: "imagegate: the cluster's service-account issuer (workloads unwrap layer keys)" });
  for (const j of jwtMounts) items.push({ kind: 'auth-mount', path: j.mount.mount, type: 'jwt', description: j.what });
  const k8s = setup.workloads?.kubernetes;
  if (k8s !== undefined) items.push({ kind: 'auth-mount', path: k8s.mount, type: 'kubernetes', description: 'imagegate: Kubernetes auth (workloads unwrap layer keys)' });
  if (setup.nodes !== undefined) items.push({ kind: 'auth-mount', path: setup.nodes.mount, type: 'approle', description: 'imagegate: AppRole (nodes unwrap layer keys)' });

  for (const k of setup.transit.keys) items.push({ kind: 'transit-key', mount: setup.transit.mount, name: k.name, ...(k.autoRotatePeriod !== undefined ? { autoRotatePeriod: k.autoRotatePeriod } : {}) });
  for (const p of generatePolicies(setup)) items.push({ kind: 'policy', ...p });

  for (const j of jwtMounts) items.push({ kind: 'auth-config', path: `auth/${j.mount.mount}/config`, body: jwtConfig(j.mount), summary: `issuer ${j.mount.issuer}, keys from ${keySourceName(j.mount)}` });
  if (k8s !== undefined) {
    items.push({
      kind: 'auth-config',
      path: `auth/${k8s.mount}/config`,
      body: { kubernetes_host: k8s.host, kubernetes_ca_cert: k8s.caCert ?? '', disable_local_ca_jwt: k8s.disableLocalCaJwt },
      summary: `TokenReview at ${k8s.host}`,
    });
  }

  for (const role of setup.ci?.roles ?? []) items.push(ciRole(setup, role));
  const workloads = setup.workloads;
  if (workloads !== undefined) {
    const identities: Array<{ role: WorkloadRole; policy: string; token: TokenLifetime }> = workloads.roles.map((role) => ({ role, policy: `${POLICY_PREFIX}workload-${role.name}`, token: workloads.token }));
    for (const { role, policy, token } of identities) {
      const who = `${role.namespaces.join(',')}/${role.serviceAccounts.join(',')}`;
      if (workloads.jwt !== undefined) {
        items.push({
          kind: 'role',
          path: `auth/${workloads.jwt.mount}/role/${role.name}`,
          body: {
            role_type: 'jwt',
            user_claim: 'sub',
            bound_audiences: [role.audience],
            bound_subject: '',
            bound_claims_type: 'string',
            bound_claims: { sub: role.namespaces.flatMap((ns) => role.serviceAccounts.map((sa) => `system:serviceaccount:${ns}:${sa}`)) },
            claim_mappings: { '/kubernetes.io/namespace': 'service_account_namespace', '/kubernetes.io/serviceaccount/name': 'service_account_name', '/kubernetes.io/pod/name': 'pod_name' },
            ...tokenFields(policy, token),
          },
          summary: `service accounts ${who}, audience ${role.audience} → ${policy}`,
        });
      }
      if (workloads.kubernetes !== undefined) {
        items.push({
          kind: 'role',
          path: `auth/${workloads.kubernetes.mount}/role/${role.name}`,
          body: { bound_service_account_names: role.serviceAccounts, bound_service_account_namespaces: role.namespaces, audience: role.audience, ...tokenFields(policy, token) },
          summary: `service accounts ${who}, audience ${role.audience} → ${policy}`,
        });
      }
    }
  }
  const nodes = setup.nodes;
  if (nodes !== undefined) {
    items.push({
      kind: 'role',
      path: `auth/${nodes.mount}/role/${nodes.role}`,
      body: {
        bind_secret_id: true,
        secret_id_ttl: nodes.secretIdTtl,
        secret_id_num_uses: 0,
        secret_id_bound_cidrs: nodes.boundCidrs,
        token_bound_cidrs: nodes.boundCidrs,
        ...tokenFields(`${POLICY_PREFIX}node`, nodes.token),
      },
      summary: `imagegate keyprovider on nodes → ${POLICY_PREFIX}node`,
    });
  }
  return items;
}

/** The ACL policies, by name, in a stable order. */
export function generatePolicies(setup: VaultSetup): GeneratedPolicy[] {
  const t = setup.transit.mount;
  const policies: GeneratedPolicy[] = [];
  for (const role of setup.ci?.roles ?? []) {
    policies.push(policy(`${POLICY_PREFIX}ci-${role.name}`, [
      // The binding (repository, ref…) lives in the role, so changing it changes the role only.
      `CI role "${role.name}" (${'github' in role.provider ? 'GitHub Actions' : 'GitLab CI'}): wrap layer keys with these Transit keys.`,
      '"update" only: encrypt cannot create (upsert) a missing key, and nothing here decrypts.',
    ], role.keys.map((k) => [`${t}/encrypt/${k}`, ['update']])));
  }
  for (const role of setup.workloads?.roles ?? []) {
    policies.push(policy(`${POLICY_PREFIX}workload-${role.name}`, [
      `Workload role "${role.name}" (the service accounts it binds, in each workload auth mount): unwrap layer keys`,
      'of images wrapped with these Transit keys (imagegate init --check / --unpack).',
    ], role.keys.map((k) => [`${t}/decrypt/${k}`, ['update']])));
  }
  if (setup.nodes !== undefined) {
    policies.push(policy(`${POLICY_PREFIX}node`, [
      `Nodes (AppRole "${setup.nodes.role}"): imagegate keyprovider unwraps layer keys at pull time for CRI-O / containerd.`,
      'The node model trusts the node: every pod on it can run images the node can unwrap; imagegate init --check',
      'is what still ties each pod to its own service account.',
    ], setup.nodes.keys.map((k) => [`${t}/decrypt/${k}`, ['update']])));
  }
  if (setup.operators !== undefined) {
    policies.push(policy(`${POLICY_PREFIX}rotate`, [
      'Operators: rotate the keys, retire old versions (min_decryption_version), imagegate rewrap and audit --vault.',
      'No encrypt or decrypt: rewrap moves ciphertexts to the new version inside Vault. (`imagegate rewrap --bind`',
      'decrypts and encrypts, and needs a token with the CI and workload capabilities; it is not granted here.)',
    ], setup.operators.keys.flatMap((k): Array<[string, string[]]> => [
      [`${t}/keys/${k}`, ['read']],
      [`${t}/keys/${k}/rotate`, ['update']],
      [`${t}/keys/${k}/config`, ['update']],
      [`${t}/rewrap/${k}`, ['update']],
    ])));
  }
  return policies;
}

function policy(name: string, comment: string[], paths: Array<[string, string[]]>): GeneratedPolicy {
  const head = [`# ${name}: generated by \`imagegate vault setup\`; change the setup document, not this text.`, ...comment.map((c) => `# ${c}`)];
  const blocks = paths.map(([path, caps]) => `path "${path}" {\n  capabilities = [${caps.map((c) => `"${c}"`).join(', ')}]\n}`);
  return { name, hcl: `${head.join('\n')}\n\n${blocks.join('\n\n')}\n` };
}

function ciRole(setup: VaultSetup, role: CiRole): SetupItem {
  const ci = setup.ci!;
  const policyName = `${POLICY_PREFIX}ci-${role.name}`;
  const common = { role_type: 'jwt', bound_subject: '', bound_claims_type: 'string', ...tokenFields(policyName, ci.token) };
  if ('github' in role.provider) {
    const g = role.provider.github;
    const claims: Record<string, string[]> = { repository: [g.repository] };
    if (g.ref !== undefined) claims.ref = [g.ref];
    if (g.environment !== undefined) claims.environment = [g.environment];
    if (g.jobWorkflowRef !== undefined) claims.job_workflow_ref = [g.jobWorkflowRef];
    return {
      kind: 'role',
      path: `auth/${ci.github!.mount}/role/${role.name}`,
      body: {
        ...common,
        user_claim: 'repository',
        bound_audiences: [g.audience],
        bound_claims: claims,
        claim_mappings: { repository: 'repository', ref: 'ref', sha: 'sha', actor: 'actor', workflow_ref: 'workflow_ref' },
      },
      summary: `${describeCi(role)} → ${policyName}`,
    };
  }
  const g = role.provider.gitlab;
  const claims: Record<string, string[]> = 'path' in g.project ? { project_path: [g.project.path] } : { project_id: [String(g.project.id)] };
  if (g.refProtected) claims.ref_protected = ['true'];
  if (g.ref !== undefined) claims.ref = [g.ref];
  if (g.refType !== undefined) claims.ref_type = [g.refType];
  if (g.environment !== undefined) claims.environment = [g.environment];
  return {
    kind: 'role',
    path: `auth/${ci.gitlab!.mount}/role/${role.name}`,
    body: {
      ...common,
      user_claim: 'project_path',
      bound_audiences: [g.audience],
      bound_claims: claims,
      claim_mappings: { project_path: 'project_path', ref: 'ref', sha: 'sha', user_login: 'user_login', pipeline_id: 'pipeline_id' },
    },
    summary: `${describeCi(role)} → ${policyName}`,
  };
}

function describeCi(role: CiRole): string {
  if ('github' in role.provider) {
    const g = role.provider.github;
    return `GitHub Actions ${g.repository}${g.ref !== undefined ? ` ${g.ref}` : ''}${g.environment !== undefined ? ` environment ${g.environment}` : ''}`;
  }
  const g = role.provider.gitlab;
  const project = 'path' in g.project ? g.project.path : `project ${g.project.id}`;
  return `GitLab ${project}${g.ref !== undefined ? ` ${g.ref}` : ''}${g.refProtected ? ', protected refs' : ''}${g.environment !== undefined ? ` environment ${g.environment}` : ''}`;
}

function tokenFields(policyName: string, token: TokenLifetime): Record<string, VaultValue> {
  return { token_policies: [policyName], token_ttl: token.ttl, token_max_ttl: token.maxTtl };
}

/** The whole key-source part of `auth/M/config`: the unused sources are written empty, so switching clears them. */
function jwtConfig(m: JwtMount): Record<string, VaultValue> {
  const k = m.keys;
  return {
    bound_issuer: m.issuer,
    oidc_discovery_url: 'oidcDiscoveryUrl' in k ? k.oidcDiscoveryUrl : '',
    oidc_discovery_ca_pem: 'oidcDiscoveryUrl' in k ? (k.oidcDiscoveryCaPem ?? '') : '',
    jwks_url: 'jwksUrl' in k ? k.jwksUrl : '',
    jwks_ca_pem: 'jwksUrl' in k ? (k.jwksCaPem ?? '') : '',
    jwt_validation_pubkeys: 'jwtValidationPubkeys' in k ? k.jwtValidationPubkeys : [],
  };
}

function keySourceName(m: JwtMount): string {
  const k = m.keys;
  if ('oidcDiscoveryUrl' in k) return `OIDC discovery ${k.oidcDiscoveryUrl}`;
  if ('jwksUrl' in k) return `JWKS ${k.jwksUrl}`;
  return `${k.jwtValidationPubkeys.length} PEM key(s)`;
}
