/**
 * The Helm chart in deploy/helm/imagegate, with the real helm (v4) and kubeconform: lint, renderings with the value
 * sets users pick validated strictly against the Kubernetes and CRD schemas, the requirements of a fail-closed
 * admission webhook checked on the rendered objects, bad values refused by values.schema.json, the rendered policy
 * parsed by imagegate's own loader, and the rendered container arguments run through the real CLI.
 */
import type { ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { isAdmittedKind } from '../../src/pod-model/workload.js';
import { parsePolicy } from '../../src/policy/load-policy.js';
import { findDeployTools, validateManifests } from '../support/deploy-tools.js';
import { CLI } from '../support/imagegate.js';
import { exited, freePort, makeTlsFiles } from '../support/registry-server.js';
import { requireTool, run, spawnServer, tempDir, type RunResult } from '../support/tools.js';

const CHART = fileURLToPath(new URL('../../deploy/helm/imagegate', import.meta.url));
const DOCKERFILE = fileURLToPath(new URL('../../deploy/Dockerfile', import.meta.url));
const tools = findDeployTools();
const openssl = requireTool('openssl');

const RELEASE = 'imagegate';
const NS = 'imagegate-system';
const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];
const DIGEST = `sha256:${'d'.repeat(64)}`;
// The test's own values are plain objects: JSON is YAML, so they go to helm as a values file unchanged.
type Values = Record<string, unknown>;
// Rendered Kubernetes objects, read loosely: the schemas (kubeconform) vouch for their shape.
type K8s = Record<string, any>;

const VALUE_SETS: Record<string, Values> = {
  defaults: {},
  'certificates from cert-manager (chart CA)': { tls: { mode: 'certManager' } },
  'certificates from a cert-manager ClusterIssuer': { tls: { mode: 'certManager', certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } } },
  'an existing TLS Secret': { tls: { mode: 'existingSecret', existingSecret: { name: 'my-webhook-tls', caBundle: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64') } } },
  'ServiceMonitor on': { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus' } } },
  'NetworkPolicy on': { networkPolicy: { enabled: true, ingressFrom: [{ ipBlock: { cidr: '10.0.0.0/24' } }] } },
  'node model injection': {
    image: { digest: DIGEST },
    injection: { enabled: true, vaultAddr: 'https://vault.example:8200', vaultRole: 'workloads', vaultAuth: 'kubernetes', authMount: 'kubernetes-prod', audience: 'vault-prod' },
  },
  'exempt namespaces': { webhook: { exemptNamespaces: ['monitoring', 'argocd'] } },
  'registry credentials and CAs': {
    registry: { authSecret: { name: 'regcred' }, caCertificates: [{ configMap: 'corp-ca', key: 'ca.crt' }, { secret: 'mirror-ca', key: 'ca.pem' }] },
  },
  'pull secrets off': { pullSecrets: { enabled: false }, networkPolicy: { enabled: true } },
  'pull secrets in listed namespaces': { pullSecrets: { namespaces: ['shop', 'payments'] } },
  'hard anti-affinity, spread, no workloads, IPv6': {
    podAntiAffinity: 'hard',
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }],
    webhook: { validateWorkloads: false },
    listenAddress: '::',
    preStopSleepSeconds: 0,
  },
};

/** Everything at once: the rendering whose container arguments the real CLI must accept. */
const KITCHEN_SINK: Values = {
  ...VALUE_SETS['node model injection'],
  ...VALUE_SETS['registry credentials and CAs'],
  tls: { mode: 'certManager' },
  serviceMonitor: { enabled: true },
  networkPolicy: { enabled: true },
  webhook: { exemptNamespaces: ['monitoring'], timeoutSeconds: 8, budgetMs: 4000, cacheTtlSeconds: 60, extraArgs: ['--cert-poll-ms', '1000'] },
  policy: {
    apiVersion: 'imagegate.dev/v1alpha1',
    kind: 'AdmissionPolicy',
    mode: 'enforce',
    failurePolicy: 'closed',
    repositories: [{ match: 'registry.example.com/prod/**', keys: [{ key: 'transit/keys/prod-layers', minVersion: 2, serviceAccounts: ['prod/*'] }] }],
  },
};

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let valuesCount = 0;

interface Rendered {
  text: string;
  objects: K8s[];
}

async function helm(args: string[]): Promise<RunResult> {
  // A private helm home and no kubeconfig: the user's repositories, plugins and clusters stay out of it.
  const home = path.join(work, 'helm-home');
  return run(tools!.helm, args, { env: { HELM_CONFIG_HOME: `${home}/config`, HELM_CACHE_HOME: `${home}/cache`, HELM_DATA_HOME: `${home}/data`, KUBECONFIG: path.join(work, 'no-kubeconfig') } });
}

async function valuesFile(values: Values): Promise<string> {
  const file = path.join(work, `values-${++valuesCount}.json`);
  await writeFile(file, JSON.stringify(values, null, 2));
  return file;
}

async function templateResult(values: Values, release = RELEASE): Promise<RunResult> {
  return helm(['template', release, CHART, '--namespace', NS, '--kube-version', tools!.kubernetesVersion, '-f', await valuesFile(values)]);
}

async function render(values: Values, release = RELEASE): Promise<Rendered> {
  const r = await templateResult(values, release);
  expect(r.code, r.stderr).toBe(0);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => {
      expect(d.errors, String(d.errors)).toEqual([]);
      return d.toJS() as K8s | null;
    })
    .filter((o): o is K8s => o !== null);
  return { text: r.stdout, objects };
}

function all(r: Rendered, kind: string): K8s[] {
  return r.objects.filter((o) => o.kind === kind);
}

function one(r: Rendered, kind: string): K8s {
  const found = all(r, kind);
  expect(found.map((o) => o.metadata.name), `exactly one ${kind}`).toHaveLength(1);
  return found[0]!;
}

function byName(r: Rendered, kind: string, name: string): K8s {
  const found = all(r, kind).find((o) => o.metadata.name === name);
  expect(found, `${kind}/${name}`).toBeDefined();
  return found!;
}

/** Whether matchLabels select an object with `labels`. */
function selects(matchLabels: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(matchLabels).length > 0 && Object.entries(matchLabels).every(([k, v]) => labels[k] === v);
}

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

function webhookContainer(r: Rendered): K8s {
  return one(r, 'Deployment').spec.template.spec.containers.find((c: K8s) => c.name === 'webhook');
}

function allWebhooks(r: Rendered): Array<{ kind: string; hook: K8s }> {
  return ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].flatMap((kind) => one(r, kind).webhooks.map((hook: K8s) => ({ kind, hook })));
}

function exemptedNamespaces(hook: K8s): string[] {
  const expr = (hook.namespaceSelector?.matchExpressions ?? []).find((e: K8s) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
  return expr?.values ?? [];
}

/** The file a mounted path resolves to: the ConfigMap or Secret (its name) and the key the volume puts there. */
function mountedFile(r: Rendered, file: string): { name: string; key: string } {
  const pod = one(r, 'Deployment').spec.template.spec;
  const mount = webhookContainer(r).volumeMounts.find((m: K8s) => file.startsWith(`${m.mountPath}/`));
  expect(mount, `a volumeMount holding ${file}`).toBeDefined();
  const itemPath = file.slice(mount.mountPath.length + 1);
  const volume = pod.volumes.find((v: K8s) => v.name === mount.name);
  expect(volume, `volume ${mount.name}`).toBeDefined();
  const sources: K8s[] = volume.projected ? volume.projected.sources.map((s: K8s) => s.configMap ?? s.secret) : [volume.configMap ?? volume.secret];
  for (const source of sources) {
    const item = (source.items ?? []).find((i: K8s) => i.path === itemPath);
    if (item !== undefined) return { name: source.name ?? source.secretName, key: item.key };
  }
  throw new Error(`no item of volume ${mount.name} is mounted as ${itemPath}`);
}

/** The cert-manager Certificate the webhook serves with (not the chart's CA). */
function servingCertificate(r: Rendered): K8s {
  const serving = all(r, 'Certificate').filter((c) => c.spec.isCA !== true);
  expect(serving).toHaveLength(1);
  return serving[0]!;
}

beforeAll(async () => {
  if (!tools) return;
  const dir = await tempDir('helm-chart-');
  work = dir.path;
  cleanup = dir.cleanup;
});

afterAll(async () => {
  await cleanup?.();
});

describe.skipIf(!tools)('Helm chart deploy/helm/imagegate', () => {
  it('passes helm lint --strict, with the defaults and with every option on', async () => {
    for (const values of [{}, KITCHEN_SINK]) {
      const r = await helm(['lint', '--strict', CHART, '--namespace', NS, '--kube-version', tools!.kubernetesVersion, '-f', await valuesFile(values)]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('prints install notes that state the policy mode, the exemptions and how to unblock a cluster', async () => {
    for (const values of [{}, KITCHEN_SINK]) {
      // A client-side dry run renders NOTES.txt, which `helm template` leaves out; it needs no cluster.
      const r = await helm(['install', RELEASE, CHART, '--namespace', NS, '--dry-run=client', '-f', await valuesFile(values)]);
      expect(r.code, r.stderr).toBe(0);
      const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
      expect(notes).toMatch(`Policy: mode ${(values as K8s).policy?.mode ?? 'warn'}`);
      expect(notes).toMatch(`Never called for namespaces: ${NS}, kube-system, kube-public, kube-node-lease`);
      expect(notes).toMatch(`kubectl delete mutatingwebhookconfiguration/${RELEASE} validatingwebhookconfiguration/${RELEASE}`);
    }
  });

  it.each(Object.entries({ ...VALUE_SETS, 'every option on': KITCHEN_SINK }))('renders valid Kubernetes 1.35 objects: %s', async (_name, values) => {
    const r = await render(values);
    const v = await validateManifests(tools!, r.text);
    expect(v.ok, v.summary).toBe(true);
    expect(v.resources).toHaveLength(r.objects.length);
    expect(v.resources.every((x) => x.status === 'valid'), v.summary).toBe(true);
  });

  it('runs at least 2 hardened replicas, spread, with a disruption budget and HTTPS probes', async () => {
    const r = await render({});
    const deployment = one(r, 'Deployment');
    const pod = deployment.spec.template;
    const labels = pod.metadata.labels as Record<string, string>;
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(selects(deployment.spec.selector.matchLabels, labels)).toBe(true);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);

    const anti = pod.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    expect(anti).toHaveLength(1);
    expect(anti[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(selects(anti[0].podAffinityTerm.labelSelector.matchLabels, labels)).toBe(true);

    const pdb = one(r, 'PodDisruptionBudget');
    expect(selects(pdb.spec.selector.matchLabels, labels)).toBe(true);
    expect(pdb.spec.maxUnavailable).toBeLessThan(deployment.spec.replicas);

    // The uid the image runs as (deploy/Dockerfile's USER), never root.
    const user = /^USER (\d+):(\d+)$/m.exec(await readFile(DOCKERFILE, 'utf8'));
    expect(user).not.toBeNull();
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: Number(user![1]), runAsGroup: Number(user![2]), seccompProfile: { type: 'RuntimeDefault' } });
    const c = webhookContainer(r);
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: Number(user![1]),
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext.capabilities.add).toBeUndefined();
    // The serving key is readable by the webhook's group (fsGroup) and by nobody else.
    const tlsVolume = pod.spec.volumes.find((v: K8s) => v.name === 'tls');
    expect(tlsVolume.secret.defaultMode).toBe(0o440);
    expect(pod.spec.securityContext.fsGroup).toBe(Number(user![2]));
    expect(c.resources.requests.cpu).toBeDefined();
    expect(c.resources.requests.memory).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'https', scheme: 'HTTPS' });
    expect(c.ports).toEqual([{ name: 'https', containerPort: 8443, protocol: 'TCP' }]);
    expect(argValue(c.args, '--listen')).toBe('0.0.0.0:8443');
    expect(c.lifecycle.preStop.sleep.seconds).toBeGreaterThan(0);
    expect(c.image).toBe('registry.example.com/imagegate:0.1.0');

    const service = one(r, 'Service');
    expect(selects(service.spec.selector, labels)).toBe(true);
    expect(service.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);

    const hard = await render(VALUE_SETS['hard anti-affinity, spread, no workloads, IPv6']!);
    const hardPod = one(hard, 'Deployment').spec.template.spec;
    expect(selects(hardPod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels, labels)).toBe(true);
    expect(selects(hardPod.topologySpreadConstraints[0].labelSelector.matchLabels, labels)).toBe(true);
    expect(argValue(webhookContainer(hard).args, '--listen')).toBe('[::]:8443');
    expect(webhookContainer(hard).lifecycle).toBeUndefined();

    const pinned = await render({ image: { digest: DIGEST, tag: 'ignored' } });
    expect(webhookContainer(pinned).image).toBe(`registry.example.com/imagegate@${DIGEST}`);
  });

  it('puts namespaced objects in the release namespace and labels everything', async () => {
    for (const values of [KITCHEN_SINK, VALUE_SETS['pull secrets in listed namespaces']!]) {
      const r = await render(values);
      const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];
      for (const o of r.objects) {
        const where = `${o.kind}/${o.metadata.name}`;
        if (clusterScoped.includes(o.kind)) expect(o.metadata.namespace, where).toBeUndefined();
        // RoleBindings granting pull-secret reads live where the secrets are.
        else if (o.kind === 'RoleBinding') expect(['shop', 'payments'], where).toContain(o.metadata.namespace);
        else expect(o.metadata.namespace, where).toBe(NS);
        expect(o.metadata.labels, where).toMatchObject({
          'app.kubernetes.io/name': 'imagegate',
          'app.kubernetes.io/instance': RELEASE,
          'app.kubernetes.io/managed-by': 'Helm',
          'app.kubernetes.io/version': '0.1.0',
          'helm.sh/chart': 'imagegate-0.1.0',
        });
      }
    }
    const other = await render({}, 'gate');
    expect(one(other, 'Deployment').metadata.name).toBe('gate-imagegate');
  });

  it('registers fail-closed, side-effect-free webhooks for exactly the kinds imagegate admits, with a timeout above its budget', async () => {
    const r = await render({});
    const service = one(r, 'Service');
    const args: string[] = webhookContainer(r).args;
    const budgetMs = Number(argValue(args, '--budget-ms'));
    expect(budgetMs).toBe(2500);
    const hooks = allWebhooks(r);
    expect(hooks.map((h) => h.hook.name).sort()).toEqual(['mutate.imagegate.dev', 'validate.imagegate.dev', 'workloads.validate.imagegate.dev']);
    for (const { kind, hook } of hooks) {
      const where = `${kind} ${hook.name}`;
      expect(hook.sideEffects, where).toBe('None');
      expect(hook.admissionReviewVersions, where).toEqual(['v1']);
      expect(hook.matchPolicy, where).toBe('Equivalent');
      expect(hook.timeoutSeconds * 1000, where).toBeGreaterThanOrEqual(2 * budgetMs);
      expect(hook.timeoutSeconds, where).toBeLessThanOrEqual(30);
      expect(hook.clientConfig.service, where).toEqual({
        name: service.metadata.name,
        namespace: NS,
        port: service.spec.ports[0].port,
        path: kind === 'MutatingWebhookConfiguration' ? '/mutate' : '/validate',
      });
      expect(exemptedNamespaces(hook), where).toEqual(expect.arrayContaining([NS, ...SYSTEM_NAMESPACES]));
      for (const rule of hook.rules) expect(rule.operations, where).toEqual(['CREATE', 'UPDATE']);
    }
    const [mutate] = one(r, 'MutatingWebhookConfiguration').webhooks as K8s[];
    expect(mutate!.reinvocationPolicy).toBe('IfNeeded');
    expect(mutate!.failurePolicy).toBe('Fail');
    expect(mutate!.rules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods', 'pods/ephemeralcontainers'], operations: ['CREATE', 'UPDATE'], scope: 'Namespaced' }]);

    const validating = one(r, 'ValidatingWebhookConfiguration').webhooks as K8s[];
    const pods = validating.find((h) => h.name === 'validate.imagegate.dev')!;
    expect(pods.failurePolicy).toBe('Fail');
    expect(pods.rules.flatMap((x: K8s) => x.resources)).toEqual(['pods', 'pods/ephemeralcontainers']);
    // Workloads are early feedback only (their pods are checked anyway), so an outage does not refuse applies.
    const workloads = validating.find((h) => h.name === 'workloads.validate.imagegate.dev')!;
    expect(workloads.failurePolicy).toBe('Ignore');
    // Every resource the webhooks are called for is a kind src/admission admits, and every admitted kind is covered.
    const KINDS: Record<string, string> = { pods: 'Pod', deployments: 'Deployment', replicasets: 'ReplicaSet', statefulsets: 'StatefulSet', daemonsets: 'DaemonSet', jobs: 'Job', cronjobs: 'CronJob' };
    const resources = hooks.flatMap(({ hook }) => hook.rules.flatMap((x: K8s) => x.resources as string[])).map((res) => res.split('/')[0]!);
    for (const res of resources) expect(isAdmittedKind(KINDS[res] ?? res), res).toBe(true);
    expect(new Set(resources)).toEqual(new Set(Object.keys(KINDS)));

    const ignore = await render({ webhook: { failurePolicy: 'Ignore', timeoutSeconds: 25, budgetMs: 10000 } });
    for (const { hook } of allWebhooks(ignore).filter((h) => h.hook.name !== 'workloads.validate.imagegate.dev')) {
      expect(hook.failurePolicy).toBe('Ignore');
      expect(hook.timeoutSeconds).toBe(25);
    }
    expect(argValue(webhookContainer(ignore).args, '--budget-ms')).toBe('10000');
    const noWorkloads = await render({ webhook: { validateWorkloads: false } });
    expect(allWebhooks(noWorkloads).map((h) => h.hook.name)).not.toContain('workloads.validate.imagegate.dev');
  });

  it('exempts the release namespace, the system namespaces and the listed ones, by the label only the API server sets', async () => {
    const r = await render({ webhook: { exemptNamespaces: ['monitoring', 'argocd'], namespaceSelectorExpressions: [{ key: 'imagegate.dev/opt-out', operator: 'DoesNotExist' }] } });
    for (const { hook } of allWebhooks(r)) {
      expect(exemptedNamespaces(hook).sort()).toEqual([NS, ...SYSTEM_NAMESPACES, 'monitoring', 'argocd'].sort());
      expect(hook.namespaceSelector.matchExpressions).toContainEqual({ key: 'imagegate.dev/opt-out', operator: 'DoesNotExist' });
    }
  });

  it('generates a CA and a serving certificate for the Service name, and trusts exactly that CA', async () => {
    const r = await render({});
    const deployment = one(r, 'Deployment');
    const tlsVolume = deployment.spec.template.spec.volumes.find((v: K8s) => v.name === 'tls');
    const secret = byName(r, 'Secret', tlsVolume.secret.secretName);
    expect(secret.type).toBe('kubernetes.io/tls');
    const pem = (key: string): string => Buffer.from(secret.data[key] as string, 'base64').toString('utf8');
    const ca = new X509Certificate(pem('ca.crt'));
    const cert = new X509Certificate(pem('tls.crt'));
    expect(ca.ca).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(pem('tls.key')))).toBe(true);
    const service = one(r, 'Service').metadata.name as string;
    // The API server calls SERVICE.NAMESPACE.svc.
    expect(cert.checkHost(`${service}.${NS}.svc`)).toBe(`${service}.${NS}.svc`);
    for (const { hook } of allWebhooks(r)) expect(hook.clientConfig.caBundle).toBe(secret.data['ca.crt']);
    expect(one(r, 'MutatingWebhookConfiguration').metadata.annotations).toBeUndefined();
    expect(all(r, 'Certificate')).toEqual([]);

    const existing = await render(VALUE_SETS['an existing TLS Secret']!);
    expect(all(existing, 'Secret')).toEqual([]);
    expect(one(existing, 'Deployment').spec.template.spec.volumes.find((v: K8s) => v.name === 'tls').secret.secretName).toBe('my-webhook-tls');
    for (const { hook } of allWebhooks(existing)) expect(hook.clientConfig.caBundle).toBe((VALUE_SETS['an existing TLS Secret']!.tls as K8s).existingSecret.caBundle);
  });

  it('with cert-manager: self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate, CA injected into both webhook configurations', async () => {
    const r = await render({ tls: { mode: 'certManager' } });
    expect(all(r, 'Secret')).toEqual([]);
    const selfSigned = all(r, 'Issuer').find((i) => i.spec.selfSigned !== undefined)!;
    const caIssuer = all(r, 'Issuer').find((i) => i.spec.ca !== undefined)!;
    expect(selfSigned).toBeDefined();
    expect(caIssuer).toBeDefined();
    const caCert = all(r, 'Certificate').find((c) => c.spec.isCA === true)!;
    const serving = all(r, 'Certificate').find((c) => c.spec.isCA !== true)!;
    expect(caCert.spec.issuerRef).toEqual({ group: 'cert-manager.io', kind: 'Issuer', name: selfSigned.metadata.name });
    expect(caIssuer.spec.ca.secretName).toBe(caCert.spec.secretName);
    expect(serving.spec.issuerRef).toEqual({ group: 'cert-manager.io', kind: 'Issuer', name: caIssuer.metadata.name });
    expect(serving.spec.usages).toContain('server auth');
    expect(serving.spec.dnsNames).toContain(`${one(r, 'Service').metadata.name}.${NS}.svc`);
    const tlsVolume = one(r, 'Deployment').spec.template.spec.volumes.find((v: K8s) => v.name === 'tls');
    expect(tlsVolume.secret.secretName).toBe(serving.spec.secretName);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      expect(one(r, kind).metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${NS}/${serving.metadata.name}`);
    }
    for (const { hook } of allWebhooks(r)) expect(hook.clientConfig.caBundle).toBeUndefined();

    const external = await render(VALUE_SETS['certificates from a cert-manager ClusterIssuer']!);
    expect(all(external, 'Issuer')).toEqual([]);
    expect(one(external, 'Certificate').spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  });

  it('grants get on secrets and nothing else, only when pull secrets are read, cluster-wide or in listed namespaces', async () => {
    const r = await render({});
    const roles = [...all(r, 'ClusterRole'), ...all(r, 'Role')];
    expect(roles).toHaveLength(1);
    expect(roles[0]!.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    const binding = one(r, 'ClusterRoleBinding');
    const sa = one(r, 'ServiceAccount');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roles[0]!.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NS }]);
    const pod = one(r, 'Deployment').spec.template.spec;
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(webhookContainer(r).env).toBeUndefined();

    const listed = await render(VALUE_SETS['pull secrets in listed namespaces']!);
    expect(all(listed, 'ClusterRoleBinding')).toEqual([]);
    expect(all(listed, 'RoleBinding').map((b) => b.metadata.namespace).sort()).toEqual(['payments', 'shop']);
    for (const b of all(listed, 'RoleBinding')) expect(b.roleRef.name).toBe(one(listed, 'ClusterRole').metadata.name);

    const off = await render(VALUE_SETS['pull secrets off']!);
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']) expect(all(off, kind), kind).toEqual([]);
    expect(one(off, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    expect(one(off, 'Deployment').spec.template.spec.automountServiceAccountToken).toBe(false);
    // No token, so the webhook must not look for the API at all.
    expect(webhookContainer(off).args).toContain('--no-pull-secrets');
    expect(webhookContainer(r).args).not.toContain('--no-pull-secrets');
    const egressPorts = one(off, 'NetworkPolicy').spec.egress.flatMap((e: K8s) => e.ports.map((p: K8s) => p.port));
    expect(egressPorts).not.toContain(6443);
  });

  it('renders a default policy that imagegate loads, in warn mode and failing open, so installing blocks nothing', async () => {
    const r = await render({});
    const file = argValue(webhookContainer(r).args, '--policy')!;
    const { name, key } = mountedFile(r, file);
    const configMap = byName(r, 'ConfigMap', name);
    const policy = parsePolicy(configMap.data[key] as string, 'rendered ConfigMap');
    expect(policy.mode).toBe('warn');
    expect(policy.failurePolicy).toBe('open');
    expect(policy.repositories).toEqual([]);

    const strict = await render(KITCHEN_SINK);
    const cm = byName(strict, 'ConfigMap', mountedFile(strict, file).name);
    const loaded = parsePolicy(cm.data['policy.yaml'] as string, 'rendered ConfigMap');
    expect(loaded.mode).toBe('enforce');
    expect(loaded.repositories[0]).toEqual({ match: 'registry.example.com/prod/**', requireEncrypted: true, keys: [{ key: 'transit/keys/prod-layers', minVersion: 2, serviceAccounts: ['prod/*'] }], vaultOnly: true });

    const external = await render({ existingPolicyConfigMap: 'platform-policy' });
    expect(all(external, 'ConfigMap')).toEqual([]);
    expect(mountedFile(external, file).name).toBe('platform-policy');
  });

  it('passes the node-model settings, registry credentials and CAs as flags on files the pod mounts', async () => {
    const r = await render(KITCHEN_SINK);
    const args: string[] = webhookContainer(r).args;
    expect(args.slice(0, 2)).toEqual(['webhook', 'serve']);
    expect(argValue(args, '--check-image')).toBe(`registry.example.com/imagegate@${DIGEST}`);
    expect(argValue(args, '--check-vault-addr')).toBe('https://vault.example:8200');
    expect(argValue(args, '--check-vault-role')).toBe('workloads');
    expect(argValue(args, '--check-vault-auth')).toBe('kubernetes');
    expect(argValue(args, '--check-auth-mount')).toBe('kubernetes-prod');
    expect(argValue(args, '--check-audience')).toBe('vault-prod');
    expect(argValue(args, '--budget-ms')).toBe('4000');
    expect(argValue(args, '--cache-ttl')).toBe('60');
    expect(args.slice(-2)).toEqual(['--cert-poll-ms', '1000']);
    expect(mountedFile(r, argValue(args, '--authfile')!)).toEqual({ name: 'regcred', key: '.dockerconfigjson' });
    const cas = args.flatMap((a, i) => (a === '--ca-cert' ? [args[i + 1]!] : []));
    expect(cas.map((f) => mountedFile(r, f))).toEqual([{ name: 'corp-ca', key: 'ca.crt' }, { name: 'mirror-ca', key: 'ca.pem' }]);
    for (const flag of ['--cert', '--key']) expect(mountedFile(r, argValue(args, flag)!).name).toBe(servingCertificate(r).spec.secretName);

    const explicit = await render({ injection: { enabled: true, image: `mirror.example/imagegate@${DIGEST}`, vaultAddr: 'https://vault:8200', vaultRole: 'w' } });
    expect(argValue(webhookContainer(explicit).args, '--check-image')).toBe(`mirror.example/imagegate@${DIGEST}`);
    expect(argValue(webhookContainer(explicit).args, '--check-auth-mount')).toBeUndefined();
    expect(argValue(webhookContainer(await render({})).args, '--check-image')).toBeUndefined();
  });

  it('scrapes /metrics over HTTPS, verified against the serving CA by the name the certificate carries', async () => {
    const r = await render({ serviceMonitor: { enabled: true }, tls: { mode: 'certManager' } });
    const monitor = one(r, 'ServiceMonitor');
    const service = one(r, 'Service');
    expect(selects(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    expect(monitor.spec.namespaceSelector.matchNames).toEqual([NS]);
    const [endpoint] = monitor.spec.endpoints as K8s[];
    expect(endpoint).toMatchObject({ port: service.spec.ports[0].name, path: '/metrics', scheme: 'https' });
    expect(endpoint!.tlsConfig.ca.secret).toEqual({ name: servingCertificate(r).spec.secretName, key: 'ca.crt' });
    expect(servingCertificate(r).spec.dnsNames).toContain(endpoint!.tlsConfig.serverName);
    expect(endpoint!.tlsConfig.insecureSkipVerify).toBeUndefined();
  });

  it('limits the pods to ingress on the webhook port and egress to DNS, the Kubernetes API and registries', async () => {
    const r = await render(VALUE_SETS['NetworkPolicy on']!);
    const np = one(r, 'NetworkPolicy');
    const labels = one(r, 'Deployment').spec.template.metadata.labels;
    expect(selects(np.spec.podSelector.matchLabels, labels)).toBe(true);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toEqual([{ ports: [{ port: 'https', protocol: 'TCP' }], from: [{ ipBlock: { cidr: '10.0.0.0/24' } }] }]);
    const egress = np.spec.egress as K8s[];
    expect(egress).toHaveLength(3);
    expect(egress[0]!.ports).toEqual([{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }]);
    expect(egress[1]!.ports).toEqual([{ port: 443, protocol: 'TCP' }]);
    expect(egress[2]!.ports.map((p: K8s) => p.port)).toEqual([443, 6443]);
    expect(all(await render({}), 'NetworkPolicy')).toEqual([]);
  });

  it('runs one replica only when told that a drained node may block pod creation, or when failing open', async () => {
    for (const values of [{ replicaCount: 1, allowSingleReplicaFailClosed: true }, { replicaCount: 1, webhook: { failurePolicy: 'Ignore' } }]) {
      const r = await render(values);
      expect(one(r, 'Deployment').spec.replicas).toBe(1);
      const v = await validateManifests(tools!, r.text);
      expect(v.ok, v.summary).toBe(true);
    }
  });

  it('gives the webhook pod nothing for Vault: no address, token, role or egress; it never talks to Vault', async () => {
    const r = await render(KITCHEN_SINK);
    const c = webhookContainer(r);
    // The --check-* flags and their values are for the injected init container, which does log in, as the pod.
    const args = c.args as string[];
    const own = args.filter((a, i) => !a.startsWith('--check-') && !(args[i - 1]?.startsWith('--check-') && !a.startsWith('--')));
    expect(own.length).toBeGreaterThan(4);
    expect(own.join(' ')).not.toMatch(/vault/i);
    expect(JSON.stringify(c.env ?? [])).not.toMatch(/VAULT|BAO_/);
    expect(JSON.stringify(one(r, 'ServiceAccount'))).not.toMatch(/vault/i);
    const egress = one(r, 'NetworkPolicy').spec.egress as K8s[];
    expect(JSON.stringify(egress)).not.toMatch(/8200|vault/i);
  });

  describe('refuses bad values at install time', () => {
    const cases: Array<[string, Values, RegExp]> = [
      ['replicaCount 0', { replicaCount: 0 }, /replicaCount/],
      ['a failurePolicy typo', { webhook: { failurePolicy: 'Fial' } }, /failurePolicy/],
      ['a timeout above the API server cap', { webhook: { timeoutSeconds: 31 } }, /timeoutSeconds/],
      ['an unknown value (typo)', { replicaCont: 3 }, /replicaCont/],
      ['an image digest that is not one', { image: { digest: 'latest' } }, /digest/],
      ['an injected image by tag', { injection: { enabled: true, image: 'registry.example.com/imagegate:1', vaultAddr: 'https://v', vaultRole: 'r' } }, /image/],
      ['a policy mode typo', { policy: { apiVersion: 'imagegate.dev/v1alpha1', kind: 'AdmissionPolicy', mode: 'enforcing', repositories: [] } }, /mode/],
      ['a policy field imagegate does not know', { policy: { apiVersion: 'imagegate.dev/v1alpha1', kind: 'AdmissionPolicy', requireEncryption: true, repositories: [] } }, /requireEncryption/],
      ['a TLS mode typo', { tls: { mode: 'cert-manager' } }, /mode/],
      ['a registry CA from neither a ConfigMap nor a Secret', { registry: { caCertificates: [{ key: 'ca.crt' }] } }, /caCertificates/],
    ];
    it.each(cases)('%s', async (_name, values, field) => {
      const r = await templateResult(values);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
      expect(r.stderr).toMatch(field);
    });

    const checks: Array<[string, Values, RegExp]> = [
      ['a look-up budget not well under the timeout', { webhook: { timeoutSeconds: 4, budgetMs: 2500 } }, /webhook\.budgetMs \(2500\) must be at most half of webhook\.timeoutSeconds \(4 s\)/],
      ['injection without Vault settings', { injection: { enabled: true, image: `r.example/i@${DIGEST}` } }, /injection\.enabled needs injection\.vaultAddr and injection\.vaultRole/],
      ['injection without an image pinned by digest', { injection: { enabled: true, vaultAddr: 'https://v', vaultRole: 'r' } }, /injection\.enabled needs an image pinned by digest/],
      ['a preStop sleep that eats the grace period', { preStopSleepSeconds: 30, terminationGracePeriodSeconds: 30 }, /preStopSleepSeconds \(30\) must be less than terminationGracePeriodSeconds \(30\)/],
      ['an existing TLS Secret without its CA', { tls: { mode: 'existingSecret', existingSecret: { name: 'x' } } }, /tls\.mode existingSecret needs/],
      ['one replica failing closed (a drained node blocks pod creation)', { replicaCount: 1 }, /replicaCount 1 with webhook\.failurePolicy Fail: .* refuses every pod creation .* set allowSingleReplicaFailClosed: true/],
    ];
    it.each(checks)('%s', async (_name, values, message) => {
      const r = await templateResult(values);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toMatch(message);
    });
  });

  describe.skipIf(!openssl)('the rendered container arguments run the real webhook', () => {
    let server: ChildProcess | undefined;
    afterAll(() => {
      server?.kill('SIGKILL');
    });

    /**
     * Starts `node dist/cli/imagegate.js` with the rendered args and env, mounted paths swapped for local files, and
     * --listen for 127.0.0.1; resolves with its URL once it listens.
     */
    async function serve(r: Rendered, files: Record<string, string>): Promise<{ url: string; child: ChildProcess; logs: () => string }> {
      const c = webhookContainer(r);
      const port = await freePort();
      const args = (c.args as string[]).map((a, i, list) => {
        if (list[i - 1] === '--listen') return `127.0.0.1:${port}`;
        if (!a.startsWith('/')) return a;
        mountedFile(r, a); // every path the webhook is given is one the pod mounts
        const local = files[a];
        if (local === undefined) throw new Error(`no local file for ${a}`);
        return local;
      });
      const env = Object.fromEntries(((c.env ?? []) as K8s[]).map((e) => [e.name as string, e.value as string]));
      let logs = '';
      const child = spawnServer(process.execPath, [CLI, ...args], { env: { ...process.env, KUBERNETES_SERVICE_HOST: undefined, ...env } });
      server = child;
      child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('https://'));
          if (line !== undefined) resolve(line.trim());
        });
        child.on('exit', (code) => reject(new Error(`imagegate webhook serve exited with ${code}:\n${out}\n${logs}`)));
      });
      return { url, child, logs: () => logs };
    }

    async function get(url: string, agent: Agent): Promise<{ status: number; body: string }> {
      const res = await request(url, { dispatcher: agent });
      return { status: res.statusCode, body: await res.body.text() };
    }

    async function stop(child: ChildProcess): Promise<void> {
      child.kill('SIGTERM');
      await exited(child);
      expect(child.exitCode).toBe(0);
    }

    it('every option on: node model, registry credentials and CAs, cert-manager paths (certificates from openssl)', async () => {
      const r = await render(KITCHEN_SINK);
      const tls = await makeTlsFiles(openssl!, path.join(work, 'tls'));
      const policyFile = path.join(work, 'policy-sink.yaml');
      await writeFile(policyFile, byName(r, 'ConfigMap', `${RELEASE}-policy`).data['policy.yaml'] as string);
      const authFile = path.join(work, 'auth.json');
      await writeFile(authFile, JSON.stringify({ auths: {} }));
      const args: string[] = webhookContainer(r).args;
      const files: Record<string, string> = {
        [argValue(args, '--policy')!]: policyFile,
        [argValue(args, '--cert')!]: tls.serverCertFile,
        [argValue(args, '--key')!]: tls.serverKeyFile,
        [argValue(args, '--authfile')!]: authFile,
      };
      for (const [i, a] of args.entries()) if (args[i - 1] === '--ca-cert') files[a] = tls.caFile;
      const { url, child, logs } = await serve(r, files);
      const agent = new Agent({ connect: { ca: await readFile(tls.caFile) } });
      try {
        expect(await get(`${url}/readyz`, agent), logs()).toEqual({ status: 200, body: 'ready\n' });
        expect((await get(`${url}/healthz`, agent)).status).toBe(200);
        expect((await get(`${url}/metrics`, agent)).body).toMatch(/imagegate_admission_duration_seconds/);
      } finally {
        await agent.close();
      }
      await stop(child);
    });

    it('defaults: the chart-generated certificate serves, trusted by the caBundle as SERVICE.NAMESPACE.svc', async () => {
      const r = await render({});
      const args: string[] = webhookContainer(r).args;
      const secret = one(r, 'Secret');
      const write = async (name: string, key: string): Promise<string> => {
        const file = path.join(work, `default-${name}`);
        await writeFile(file, Buffer.from(secret.data[key] as string, 'base64'));
        return file;
      };
      const policyFile = path.join(work, 'policy-default.yaml');
      await writeFile(policyFile, one(r, 'ConfigMap').data['policy.yaml'] as string);
      const { url, child, logs } = await serve(r, {
        [argValue(args, '--policy')!]: policyFile,
        [argValue(args, '--cert')!]: await write('tls.crt', 'tls.crt'),
        [argValue(args, '--key')!]: await write('tls.key', 'tls.key'),
      });
      const hook = one(r, 'ValidatingWebhookConfiguration').webhooks[0];
      const { name, namespace } = hook.clientConfig.service;
      // As the API server connects: trusting only the caBundle, checking the Service's DNS name.
      const agent = new Agent({ connect: { ca: Buffer.from(hook.clientConfig.caBundle as string, 'base64'), servername: `${name}.${namespace}.svc` } });
      try {
        expect(await get(`${url}/readyz`, agent), logs()).toEqual({ status: 200, body: 'ready\n' });
      } finally {
        await agent.close();
      }
      await stop(child);
    });
  });
});
