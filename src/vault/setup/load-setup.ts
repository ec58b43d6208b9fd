import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { ImagegateError, systemErrorCode } from '../../errors.js';
import { absent, knownFields, present, yamlSyntaxError } from '../../image/strict-document.js';
import { JsonReader, quote } from '../../image/validate.js';
import {
  VAULT_SETUP_API_VERSIONS,
  VAULT_SETUP_KIND,
  type CiRole,
  type GitHubBinding,
  type GitLabBinding,
  type JwtKeySource,
  type JwtMount,
  type TransitKeySpec,
  type VaultSetup,
  type WorkloadRole,
} from './types.js';
import { k8sNames, lifetime, mountPath, nonEmpty, optionalNonEmpty, pem, segment, uniqueName, url, duration } from './setup-fields.js';

/**
 * Reads a Vault setup document (YAML) into a validated {@link VaultSetup}.
 *
 * Strict like the admission policy: every field is checked and named by its path (`$.ci.roles[0].github.audience`)
 * when it is wrong, and a field this build does not know is an error. A misspelt `refProtected` silently ignored
 * would hand a key to every branch of a project.
 *
 * Defaults: `transit.mount: transit`; GitHub mount `jwt-github` with issuer `https://token.actions.githubusercontent.com`;
 * GitLab mount `jwt-gitlab`; `refProtected: true`; Kubernetes auth mount `kubernetes`; workload JWT mount
 * `jwt-kubernetes`; workload audience `vault`; node AppRole `approle`/`imagegate-node`; a JWT mount without a key
 * source discovers its issuer (`oidcDiscoveryUrl` = issuer). Kubernetes auth has no default CA: `caCert` or
 * `caCertFromVaultPod: true`. Token lifetimes: CI and workloads 10m (max = tokenTtl), nodes 10m (max 1h).
 */

const MAX_SETUP_BYTES = 1024 * 1024;
const GITHUB_ACTIONS_ISSUER = 'https://token.actions.githubusercontent.com';

const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/;

export function parseVaultSetup(text: string, where: string): VaultSetup {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw yamlSyntaxError(e, where, 'USAGE');
  }
  if (doc === null || doc === undefined) throw new ImagegateError('USAGE', `${where}: the setup document is empty; it needs apiVersion, kind and transit`);
  try {
    return readSetup(new JsonReader(where, doc));
  } catch (e) {
    // A bad setup document is the caller's input to fix: exit 2, like a bad flag.
    if (e instanceof ImagegateError && e.code === 'BAD_FORMAT') throw new ImagegateError('USAGE', e.message);
    throw e;
  }
}

export async function loadVaultSetupFile(file: string): Promise<VaultSetup> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_SETUP_BYTES) throw new ImagegateError('USAGE', `${file}: the setup document is ${bytes.length} bytes; more than 1 MiB is refused`);
    text = bytes.toString('utf8');
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    const code = systemErrorCode(e);
    if (code === 'ENOENT') throw new ImagegateError('USAGE', `setup file ${file} does not exist`);
    throw new ImagegateError('USAGE', `cannot read setup file ${file} (${code ?? String(e)})`);
  }
  return parseVaultSetup(text, file);
}

function readSetup(root: JsonReader): VaultSetup {
  const apiVersion = readDocumentHeader(root);
  const transit = readTransit(present(root.field('transit'), 'says which Transit mount and keys imagegate uses'));
  const context: SectionContext = { keyList: transitKeyList(transit.keys.map((k) => k.name)), claimMount: authMountClaims() };
  const setup: VaultSetup = { apiVersion, kind: VAULT_SETUP_KIND, transit };
  const ci = root.field('ci');
  if (!absent(ci)) setup.ci = readCi(ci, context);
  const workloads = root.field('workloads');
  if (!absent(workloads)) setup.workloads = readWorkloads(workloads, context);
  const nodes = root.field('nodes');
  if (!absent(nodes)) setup.nodes = readNodes(nodes, context);
  const operators = root.field('operators');
  if (!absent(operators)) setup.operators = readOperators(operators, context);
  return setup;
}

/** What the sections after `transit` share: the Transit keys they may name, and the auth mounts taken so far. */
interface SectionContext {
  /** The Transit keys `r` lists, each from $.transit.keys; when `r` is absent, every key if `allWhenAbsent`. */
  keyList: (r: JsonReader, allWhenAbsent: boolean) => string[];
  /** Records that `r` uses auth `mount`; one mount backs one issuer or method, so a second user is an error. */
  claimMount: (r: JsonReader, mount: string) => void;
}

/** `apiVersion`, `kind`, the retired `webhook` section and the top-level field names; returns the apiVersion. */
function readDocumentHeader(root: JsonReader): VaultSetup['apiVersion'] {
  root.object();
  const apiVersion = present(root.field('apiVersion'), `must be ${VAULT_SETUP_API_VERSIONS.join(' or ')}`).string();
  if (!(VAULT_SETUP_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    root.field('apiVersion').fail(`is ${quote(apiVersion)}, a version this build does not read; it reads ${VAULT_SETUP_API_VERSIONS.join(', ')}`);
  }
  const kind = present(root.field('kind'), `must be ${VAULT_SETUP_KIND}`).string();
  if (kind !== VAULT_SETUP_KIND) root.field('kind').fail(`must be ${VAULT_SETUP_KIND}, got ${quote(kind)}`);
  const webhook = root.field('webhook');
  if (!absent(webhook)) {
    // Earlier builds made a Vault role and policy for the webhook; it never used them (the key version it judges is
    // in the image's Transit ciphertext), and an unused identity that can read key metadata is only attack surface.
    webhook.fail(
      'is no longer read: the admission webhook never talks to Vault, so it gets no Vault role or policy (docs/threat-model.md). ' +
        'Remove this section; if an earlier setup created them, delete them with bao delete auth/MOUNT/role/imagegate-webhook (each workload mount) and bao policy delete imagegate-webhook',
    );
  }
  knownFields(root, ['apiVersion', 'kind', 'transit', 'ci', 'workloads', 'nodes', 'operators']);
  return apiVersion as VaultSetup['apiVersion'];
}

function readTransit(transit: JsonReader): VaultSetup['transit'] {
  knownFields(transit, ['mount', 'keys']);
  const mount = mountPath(transit.field('mount'), 'transit');
  const keys: TransitKeySpec[] = [];
  const keyNames = new Set<string>();
  const keysReader = present(transit.field('keys'), 'must list the Transit keys, e.g. [{name: shop-layers}]');
  if (keysReader.array().length === 0) keysReader.fail('must list at least one Transit key');
  for (const k of keysReader.array()) {
    knownFields(k, ['name', 'autoRotatePeriod']);
    const name = segment(present(k.field('name'), 'names the Transit key'));
    if (keyNames.has(name)) k.field('name').fail(`repeats key ${quote(name)}`);
    keyNames.add(name);
    const period = k.field('autoRotatePeriod');
    const autoRotatePeriod = absent(period) ? undefined : duration(period);
    if (autoRotatePeriod !== undefined && autoRotatePeriod !== 0 && autoRotatePeriod < 3600) period.fail(`must be 0 (off) or at least 1h, as Transit requires; got ${quote(period.value)}`);
    keys.push({ name, ...(autoRotatePeriod !== undefined ? { autoRotatePeriod } : {}) });
  }
  return { mount, keys };
}

function transitKeyList(keyNames: string[]): SectionContext['keyList'] {
  const known = new Set(keyNames);
  return (r, allWhenAbsent) => {
    if (absent(r)) {
      if (allWhenAbsent) return [...known];
      r.fail('must list the Transit keys (names from $.transit.keys)');
    }
    const names = r.array().map((item) => {
      const name = item.string();
      if (!known.has(name)) item.fail(`names key ${quote(name)}, which is not in $.transit.keys (${[...known].join(', ')})`);
      return name;
    });
    if (names.length === 0) r.fail('must list at least one Transit key');
    return [...new Set(names)];
  };
}

function authMountClaims(): SectionContext['claimMount'] {
  const authMounts = new Map<string, string>();
  return (r, mount) => {
    const earlier = authMounts.get(mount);
    if (earlier !== undefined) r.fail(`uses auth mount ${quote(mount)}, which ${earlier} uses already; one mount backs one issuer or method`);
    authMounts.set(mount, r.path);
  };
}

function readCi(ci: JsonReader, context: SectionContext): NonNullable<VaultSetup['ci']> {
  knownFields(ci, ['github', 'gitlab', 'tokenTtl', 'tokenMaxTtl', 'roles']);
  const gh = ci.field('github');
  const gl = ci.field('gitlab');
  const github = absent(gh) ? undefined : jwtMount(gh, { mount: 'jwt-github', issuer: GITHUB_ACTIONS_ISSUER, issuerField: 'issuer' });
  const gitlab = absent(gl) ? undefined : jwtMount(gl, { mount: 'jwt-gitlab', issuerField: 'url' });
  if (github !== undefined) context.claimMount(gh.field('mount'), github.mount);
  if (gitlab !== undefined) context.claimMount(gl.field('mount'), gitlab.mount);
  const names = new Set<string>();
  const roles = present(ci.field('roles'), 'lists the CI pipelines that may wrap layer keys')
    .array()
    .map((r) => readCiRole(r, names, context, { github: github !== undefined, gitlab: gitlab !== undefined }));
  return { ...(github !== undefined ? { github } : {}), ...(gitlab !== undefined ? { gitlab } : {}), token: lifetime(ci, 600, (ttl) => ttl), roles };
}

/** One CI role; `mounts` says which of $.ci.github and $.ci.gitlab the document declares. */
function readCiRole(r: JsonReader, names: Set<string>, context: SectionContext, mounts: { github: boolean; gitlab: boolean }): CiRole {
  knownFields(r, ['name', 'keys', 'github', 'gitlab']);
  const name = uniqueName(r.field('name'), names);
  const keys = context.keyList(r.field('keys'), false);
  const hasGh = !absent(r.field('github'));
  const hasGl = !absent(r.field('gitlab'));
  if (hasGh === hasGl) r.fail('needs exactly one of github or gitlab');
  if (hasGh && !mounts.github) r.field('github').fail('needs $.ci.github (the GitHub Actions auth mount)');
  if (hasGl && !mounts.gitlab) r.field('gitlab').fail('needs $.ci.gitlab (the GitLab auth mount)');
  return { name, keys, provider: hasGh ? { github: githubBinding(r.field('github')) } : { gitlab: gitlabBinding(r.field('gitlab')) } };
}

function readWorkloads(workloads: JsonReader, context: SectionContext): NonNullable<VaultSetup['workloads']> {
  knownFields(workloads, ['kubernetes', 'jwt', 'audience', 'tokenTtl', 'tokenMaxTtl', 'roles']);
  const k8s = workloads.field('kubernetes');
  const jw = workloads.field('jwt');
  if (absent(k8s) && absent(jw)) workloads.fail('needs kubernetes (Kubernetes auth) or jwt (JWT auth with the cluster issuer), or both');
  const kubernetes = absent(k8s) ? undefined : readKubernetesAuth(k8s);
  if (kubernetes !== undefined) context.claimMount(k8s.field('mount'), kubernetes.mount);
  const jwt = absent(jw) ? undefined : jwtMount(jw, { mount: 'jwt-kubernetes', issuerField: 'issuer' });
  if (jwt !== undefined) context.claimMount(jw.field('mount'), jwt.mount);
  const aud = workloads.field('audience');
  const audience = absent(aud) ? 'vault' : nonEmpty(aud);
  const names = new Set<string>();
  const roles = present(workloads.field('roles'), 'lists the workloads that may unwrap layer keys')
    .array()
    .map((r) => readWorkloadRole(r, names, context, audience));
  return { ...(kubernetes !== undefined ? { kubernetes } : {}), ...(jwt !== undefined ? { jwt } : {}), token: lifetime(workloads, 600, (ttl) => ttl), roles };
}

function readKubernetesAuth(k8s: JsonReader): NonNullable<NonNullable<VaultSetup['workloads']>['kubernetes']> {
  knownFields(k8s, ['mount', 'host', 'caCert', 'caCertFromVaultPod', 'disableLocalCaJwt']);
  const host = url(present(k8s.field('host'), 'is the API server Vault sends TokenReviews to, e.g. https://kubernetes.default.svc'));
  const caCert = pem(k8s.field('caCert'), 'certificate');
  const disable = k8s.field('disableLocalCaJwt');
  if (!absent(disable) && typeof disable.value !== 'boolean') disable.fail(`must be true or false, got ${quote(disable.value)}`);
  kubernetesCaSource(k8s, caCert !== undefined, disable.value === true);
  return { mount: mountPath(k8s.field('mount'), 'kubernetes'), host, ...(caCert !== undefined ? { caCert } : {}), disableLocalCaJwt: disable.value === true };
}

/** One workload role; `audience` is the section's, which a role may override. */
function readWorkloadRole(r: JsonReader, names: Set<string>, context: SectionContext, audience: string): WorkloadRole {
  knownFields(r, ['name', 'namespaces', 'serviceAccounts', 'keys', 'audience']);
  const name = uniqueName(r.field('name'), names);
  const roleAudience = r.field('audience');
  return {
    name,
    namespaces: k8sNames(present(r.field('namespaces'), 'lists the namespaces of the service accounts')),
    serviceAccounts: k8sNames(present(r.field('serviceAccounts'), 'lists the service-account names')),
    keys: context.keyList(r.field('keys'), false),
    audience: absent(roleAudience) ? audience : nonEmpty(roleAudience),
  };
}

function readNodes(nodes: JsonReader, context: SectionContext): NonNullable<VaultSetup['nodes']> {
  knownFields(nodes, ['mount', 'role', 'keys', 'tokenTtl', 'tokenMaxTtl', 'secretIdTtl', 'boundCidrs']);
  const mount = mountPath(nodes.field('mount'), 'approle');
  context.claimMount(nodes.field('mount'), mount);
  const role = nodes.field('role');
  const secretIdTtl = nodes.field('secretIdTtl');
  return {
    mount,
    role: absent(role) ? 'imagegate-node' : segment(role),
    keys: context.keyList(nodes.field('keys'), false),
    token: lifetime(nodes, 600, (ttl) => Math.max(ttl, 3600)),
    secretIdTtl: absent(secretIdTtl) ? 0 : duration(secretIdTtl),
    boundCidrs: nodes.field('boundCidrs').optionalArray().map((c) => {
      const s = c.string();
      if (!CIDR.test(s)) c.fail(`must be a CIDR such as 10.0.0.0/8, got ${quote(s)}`);
      return s;
    }),
  };
}

function readOperators(operators: JsonReader, context: SectionContext): NonNullable<VaultSetup['operators']> {
  knownFields(operators, ['keys']);
  return { keys: context.keyList(operators.field('keys'), true) };
}

/**
 * Where Vault gets the CA that signed the API server's certificate, decided here rather than by Vault's default.
 * Without `kubernetes_ca_cert`, Vault reads the CA file of its own pod (/var/run/secrets/kubernetes.io/
 * serviceaccount/ca.crt); a Vault outside the cluster has none, and `auth/M/config` then fails late in a run, after
 * the mounts, keys, policies and other configs were written. So the document says which: `caCert`, or
 * `caCertFromVaultPod: true`.
 */
function kubernetesCaSource(k8s: JsonReader, hasCaCert: boolean, disableLocalCaJwt: boolean): void {
  const fromPod = k8s.field('caCertFromVaultPod');
  if (!absent(fromPod) && typeof fromPod.value !== 'boolean') fromPod.fail(`must be true or false, got ${quote(fromPod.value)}`);
  const podCa = fromPod.value === true;
  if (hasCaCert && podCa) fromPod.fail('cannot be combined with caCert: give the CA in caCert, or let Vault read its own pod\'s CA, not both');
  if (podCa && disableLocalCaJwt) fromPod.fail("cannot be combined with disableLocalCaJwt: true, which tells Vault not to read its pod's CA file; give caCert instead");
  if (!hasCaCert && !podCa) {
    k8s.fail(
      "needs caCert: the PEM certificate of the CA that signed the API server's (host) certificate, which Vault checks when it sends TokenReviews. " +
        "Without it Vault reads the CA file of its own pod (/var/run/secrets/kubernetes.io/serviceaccount/ca.crt), which exists only when Vault runs as a pod in this cluster: " +
        "then say so with caCertFromVaultPod: true. The CA of your kubeconfig's cluster: " +
        "kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d",
    );
  }
}

function jwtMount(r: JsonReader, defaults: { mount: string; issuer?: string; issuerField: 'issuer' | 'url' }): JwtMount {
  knownFields(r, ['mount', defaults.issuerField, 'oidcDiscoveryUrl', 'oidcDiscoveryCaPem', 'jwksUrl', 'jwksCaPem', 'jwtValidationPubkeys']);
  const mount = mountPath(r.field('mount'), defaults.mount);
  const issuerReader = r.field(defaults.issuerField);
  const issuer = absent(issuerReader) && defaults.issuer !== undefined ? defaults.issuer : url(present(issuerReader, 'is the issuer every token must name (iss)'));
  const discovery = r.field('oidcDiscoveryUrl');
  const jwks = r.field('jwksUrl');
  const pubkeys = r.field('jwtValidationPubkeys');
  const given = [discovery, jwks, pubkeys].filter((f) => !absent(f));
  if (given.length > 1) given[1]!.fail(`cannot be combined with ${given[0]!.path}: Vault takes exactly one of oidcDiscoveryUrl, jwksUrl and jwtValidationPubkeys`);
  if (!absent(r.field('oidcDiscoveryCaPem')) && (!absent(jwks) || !absent(pubkeys))) r.field('oidcDiscoveryCaPem').fail('belongs to oidcDiscoveryUrl');
  if (!absent(r.field('jwksCaPem')) && absent(jwks)) r.field('jwksCaPem').fail('belongs to jwksUrl');
  const discoveryCa = pem(r.field('oidcDiscoveryCaPem'), 'certificate');
  const jwksCa = pem(r.field('jwksCaPem'), 'certificate');
  let keys: JwtKeySource;
  if (!absent(jwks)) keys = { jwksUrl: url(jwks), ...(jwksCa !== undefined ? { jwksCaPem: jwksCa } : {}) };
  else if (!absent(pubkeys)) {
    const list = pubkeys.array().map((p) => pem(p, 'key')!);
    if (list.length === 0) pubkeys.fail('must list at least one PEM public key');
    keys = { jwtValidationPubkeys: list };
  } else keys = { oidcDiscoveryUrl: absent(discovery) ? issuer : url(discovery), ...(discoveryCa !== undefined ? { oidcDiscoveryCaPem: discoveryCa } : {}) };
  return { mount, issuer, keys };
}

function githubBinding(r: JsonReader): GitHubBinding {
  knownFields(r, ['repository', 'ref', 'environment', 'jobWorkflowRef', 'audience']);
  const repository = present(r.field('repository'), 'is OWNER/REPO').string();
  if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repository)) r.field('repository').fail(`must be OWNER/REPO, got ${quote(repository)}`);
  const ref = optionalNonEmpty(r.field('ref'));
  if (ref !== undefined && !ref.startsWith('refs/')) r.field('ref').fail(`must be a full ref such as refs/heads/main or refs/tags/v1, got ${quote(ref)}`);
  const environment = optionalNonEmpty(r.field('environment'));
  const jobWorkflowRef = optionalNonEmpty(r.field('jobWorkflowRef'));
  return {
    repository,
    ...(ref !== undefined ? { ref } : {}),
    ...(environment !== undefined ? { environment } : {}),
    ...(jobWorkflowRef !== undefined ? { jobWorkflowRef } : {}),
    audience: nonEmpty(present(r.field('audience'), 'is the audience the workflow asks for (IMAGEGATE_VAULT_AUDIENCE), e.g. https://vault.example')),
  };
}

function gitlabBinding(r: JsonReader): GitLabBinding {
  knownFields(r, ['projectPath', 'projectId', 'refProtected', 'ref', 'refType', 'environment', 'audience']);
  const pathReader = r.field('projectPath');
  const idReader = r.field('projectId');
  if (absent(pathReader) === absent(idReader)) r.fail('needs exactly one of projectPath (group/project) or projectId');
  let project: GitLabBinding['project'];
  if (!absent(pathReader)) {
    const path = pathReader.string();
    if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/.test(path)) pathReader.fail(`must be GROUP[/SUBGROUP…]/PROJECT, got ${quote(path)}`);
    project = { path };
  } else {
    const id = idReader.integer();
    if (id < 1) idReader.fail(`must be a positive project ID, got ${id}`);
    project = { id };
  }
  const protectedReader = r.field('refProtected');
  if (!absent(protectedReader) && typeof protectedReader.value !== 'boolean') protectedReader.fail(`must be true or false, got ${quote(protectedReader.value)}`);
  const refTypeReader = r.field('refType');
  if (!absent(refTypeReader) && refTypeReader.value !== 'branch' && refTypeReader.value !== 'tag') refTypeReader.fail(`must be branch or tag, got ${quote(refTypeReader.value)}`);
  const ref = optionalNonEmpty(r.field('ref'));
  const environment = optionalNonEmpty(r.field('environment'));
  return {
    project,
    refProtected: protectedReader.value !== false,
    ...(ref !== undefined ? { ref } : {}),
    ...(!absent(refTypeReader) ? { refType: refTypeReader.value as 'branch' | 'tag' } : {}),
    ...(environment !== undefined ? { environment } : {}),
    audience: nonEmpty(present(r.field('audience'), 'is the aud of the job\'s id_tokens entry, e.g. https://vault.example')),
  };
}
