/**
 * The deployment test tools bite: real kubeconform against the generated strict schemas accepts well-formed
 * manifests and rejects unknown fields, wrong types, bad custom resources and kinds it has no schema for; real
 * actionlint accepts a good workflow and rejects a broken one; helm runs and its output validates.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { findDeployTools, lintWorkflow, validateManifests, type DeployTools } from '../support/deploy-tools.js';
import { runOk, testTempDir } from '../support/tools.js';

const tools = findDeployTools();

/** YAML documents for `objects`, as `helm template` would print them. */
function manifests(...objects: object[]): string {
  return objects.map((o) => `---\n${stringify(o)}`).join('');
}

const labels = { 'app.kubernetes.io/name': 'imagegate-webhook' };

function deployment(): Record<string, any> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'imagegate-webhook', namespace: 'imagegate', labels },
    spec: {
      replicas: 2,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
      template: {
        metadata: { labels },
        spec: {
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'webhook',
              image: 'registry.example/imagegate:0.1.0',
              imagePullPolicy: 'IfNotPresent',
              args: ['webhook', '--port', '8443'],
              ports: [{ name: 'https', containerPort: 8443 }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'https', scheme: 'HTTPS' } },
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: 1, memory: '256Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: 'imagegate-webhook-tls' } }],
        },
      },
    },
  };
}

const service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'imagegate-webhook', namespace: 'imagegate' },
  spec: { selector: labels, ports: [{ name: 'https', port: 443, targetPort: 'https' }] },
};

const webhookConfiguration = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'ValidatingWebhookConfiguration',
  metadata: { name: 'imagegate', annotations: { 'cert-manager.io/inject-ca-from': 'imagegate/imagegate-webhook' } },
  webhooks: [
    {
      name: 'pods.imagegate.example',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      clientConfig: { service: { name: 'imagegate-webhook', namespace: 'imagegate', path: '/validate', port: 443 } },
      rules: [
        {
          apiGroups: [''],
          apiVersions: ['v1'],
          operations: ['CREATE', 'UPDATE'],
          resources: ['pods'],
          scope: 'Namespaced',
        },
      ],
      namespaceSelector: {
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] }],
      },
    },
  ],
};

const podDisruptionBudget = {
  apiVersion: 'policy/v1',
  kind: 'PodDisruptionBudget',
  metadata: { name: 'imagegate-webhook', namespace: 'imagegate' },
  spec: { minAvailable: 1, selector: { matchLabels: labels } },
};

const networkPolicy = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'imagegate-webhook', namespace: 'imagegate' },
  spec: {
    podSelector: { matchLabels: labels },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ ports: [{ protocol: 'TCP', port: 8443 }] }],
    egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ protocol: 'TCP', port: 8200 }] }],
  },
};

function serviceMonitor(): Record<string, any> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'imagegate-webhook', namespace: 'imagegate', labels },
    spec: {
      selector: { matchLabels: labels },
      endpoints: [
        {
          port: 'https',
          scheme: 'https',
          path: '/metrics',
          interval: '30s',
          tlsConfig: { insecureSkipVerify: false, serverName: 'imagegate-webhook.imagegate.svc' },
        },
      ],
    },
  };
}

const issuer = {
  apiVersion: 'cert-manager.io/v1',
  kind: 'Issuer',
  metadata: { name: 'imagegate-selfsigned', namespace: 'imagegate' },
  spec: { selfSigned: {} },
};

function certificate(): Record<string, any> {
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'imagegate-webhook', namespace: 'imagegate' },
    spec: {
      secretName: 'imagegate-webhook-tls',
      duration: '2160h',
      dnsNames: ['imagegate-webhook.imagegate.svc', 'imagegate-webhook.imagegate.svc.cluster.local'],
      issuerRef: { name: 'imagegate-selfsigned', kind: 'Issuer' },
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
    },
  };
}

/** Validates `object` and returns the one resource's verdict, failing the test on anything but one result. */
async function verdictFor(t: DeployTools, object: object): Promise<{ status: string; msg?: string }> {
  const result = await validateManifests(t, manifests(object));
  expect(result.resources, result.summary).toHaveLength(1);
  return result.resources[0]!;
}

describe.skipIf(!tools)('Kubernetes manifests against strict schemas (kubeconform)', () => {
  const t = tools!;

  it('accepts a well-formed webhook deployment: Deployment, Service, webhook config, PDB, NetworkPolicy', async () => {
    const all = manifests(deployment(), service, webhookConfiguration, podDisruptionBudget, networkPolicy);
    const result = await validateManifests(t, all);
    expect(result.ok, result.summary).toBe(true);
    expect(result.resources.map((r) => `${r.kind}/${r.status}`)).toEqual([
      'Deployment/valid',
      'Service/valid',
      'ValidatingWebhookConfiguration/valid',
      'PodDisruptionBudget/valid',
      'NetworkPolicy/valid',
    ]);
  });

  it('rejects an unknown field deep in a pod template', async () => {
    const bad = deployment();
    bad.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    const verdict = await verdictFor(t, bad);
    expect(verdict.status).toBe('invalid');
    expect(verdict.msg).toMatch(/imagePullPolicyy/);
  });

  it('rejects an unknown field under metadata and at the top level', async () => {
    const typo = deployment();
    typo.metadata.lables = labels;
    expect((await verdictFor(t, typo)).status).toBe('invalid');
    expect((await verdictFor(t, { ...service, extra: true })).status).toBe('invalid');
  });

  it('rejects a wrong type', async () => {
    const bad = deployment();
    bad.spec.replicas = 'two';
    const verdict = await verdictFor(t, bad);
    expect(verdict.status).toBe('invalid');
    expect(verdict.msg).toMatch(/replicas/);
  });

  it('rejects a missing required field', async () => {
    const noName = deployment();
    delete noName.spec.template.spec.containers[0].name;
    const verdict = await verdictFor(t, noName);
    expect(verdict.status).toBe('invalid');
    expect(verdict.msg).toMatch(/missing propert.*name/);
  });

  it('takes int-or-string fields and quantities as either', async () => {
    const ok = deployment();
    ok.spec.strategy.rollingUpdate = { maxUnavailable: '50%', maxSurge: 1 };
    ok.spec.template.spec.containers[0].resources.limits = { cpu: 0.5, memory: 268435456 };
    expect((await verdictFor(t, ok)).status).toBe('valid');
    const bad = deployment();
    bad.spec.strategy.rollingUpdate.maxSurge = true;
    expect((await verdictFor(t, bad)).status).toBe('invalid');
  });

  it('rejects an apiVersion that does not serve the kind', async () => {
    expect((await verdictFor(t, { ...podDisruptionBudget, apiVersion: 'policy/v1beta1' })).status).toBe('error');
  });

  it('accepts a ServiceMonitor, a cert-manager Issuer and Certificate', async () => {
    const result = await validateManifests(t, manifests(serviceMonitor(), issuer, certificate()));
    expect(result.ok, result.summary).toBe(true);
    expect(result.resources.map((r) => r.kind)).toEqual(['ServiceMonitor', 'Issuer', 'Certificate']);
  });

  it('rejects custom resources with an unknown field, a wrong type or a bad enum value', async () => {
    const monitor = serviceMonitor();
    monitor.spec.endpoints[0].intervall = '30s';
    const verdict = await verdictFor(t, monitor);
    expect(verdict.status).toBe('invalid');
    expect(verdict.msg).toMatch(/intervall/);

    const cert = certificate();
    cert.spec.dnsNames = 'imagegate-webhook.imagegate.svc';
    expect((await verdictFor(t, cert)).status).toBe('invalid');

    const algorithm = certificate();
    algorithm.spec.privateKey.algorithm = 'DSA';
    expect((await verdictFor(t, algorithm)).status).toBe('invalid');

    const metadataTypo = certificate();
    metadataTypo.metadata.namespce = 'imagegate';
    expect((await verdictFor(t, metadataTypo)).status).toBe('invalid');
  });

  it('reports a kind without a schema as an error, not a skip', async () => {
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
    const result = await validateManifests(t, manifests(service, widget));
    expect(result.ok).toBe(false);
    expect(result.resources.map((r) => `${r.kind}/${r.status}`)).toEqual(['Service/valid', 'Widget/error']);
    expect(result.summary).toMatch(/could not find schema for Widget/);
  });

  it('does not pass an empty render', async () => {
    const result = await validateManifests(t, '---\n# nothing rendered\n');
    expect(result.ok).toBe(false);
    expect(result.resources).toEqual([]);
  });
});

describe.skipIf(!tools)('helm', () => {
  const t = tools!;

  it('runs, and renders a chart whose output validates', async () => {
    const { stdout } = await runOk(t.helm, ['version', '--short']);
    expect(stdout).toMatch(/^v4\./);

    const chart = path.join(await testTempDir('helm-chart-'), 'demo');
    await mkdir(path.join(chart, 'templates'), { recursive: true });
    await writeFile(path.join(chart, 'Chart.yaml'), stringify({ apiVersion: 'v2', name: 'demo', version: '0.1.0' }));
    await writeFile(path.join(chart, 'values.yaml'), stringify({ port: 443 }));
    await writeFile(
      path.join(chart, 'templates/service.yaml'),
      ['apiVersion: v1', 'kind: Service', 'metadata:', '  name: {{ .Release.Name }}', 'spec:', '  ports:']
        .concat('    - port: {{ .Values.port }}', '')
        .join('\n'),
    );
    const rendered = await runOk(t.helm, ['template', 'demo', chart]);
    const result = await validateManifests(t, rendered.stdout);
    expect(result.ok, result.summary).toBe(true);
    const broken = await runOk(t.helm, ['template', 'demo', chart, '--set', 'port=https-port']);
    expect((await validateManifests(t, broken.stdout)).ok).toBe(false);
  });
});

describe.skipIf(!tools)('GitHub Actions workflows (actionlint)', () => {
  const t = tools!;
  const workflow = {
    name: 'ci',
    on: { push: { branches: ['main'] }, pull_request: {} },
    permissions: { contents: 'read' },
    jobs: {
      test: {
        'runs-on': 'ubuntu-latest',
        steps: [
          { uses: 'actions/checkout@v4' },
          { uses: 'actions/setup-node@v4', with: { 'node-version': 24 } },
          { run: 'npm ci && npm test', env: { CI: 'true', REF: '${{ github.ref }}' } },
        ],
      },
    },
  };

  it('accepts a valid workflow', async () => {
    const result = await lintWorkflow(t, stringify(workflow));
    expect(result.ok, result.summary).toBe(true);
  });

  it('rejects an unknown key and a bad expression', async () => {
    const { 'runs-on': runsOn, ...job } = workflow.jobs.test;
    const typo = await lintWorkflow(t, stringify({ ...workflow, jobs: { test: { ...job, 'runs-onn': runsOn } } }));
    expect(typo.ok).toBe(false);
    expect(typo.summary).toMatch(/runs-onn/);

    const expression = structuredClone(workflow);
    expression.jobs.test.steps[2]!.env!.REF = '${{ github.reff }}';
    const bad = await lintWorkflow(t, stringify(expression));
    expect(bad.ok).toBe(false);
    expect(bad.problems.map((p) => p.kind)).toContain('expression');
  });
});
