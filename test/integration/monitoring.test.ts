/**
 * deploy/monitoring (issue 15, CI and operations): the Grafana dashboard and the PrometheusRule alerts are checked
 * with real tools, not by eye. promtool (built from Prometheus's Go module by test/infra/build-promtool.sh) checks the
 * rules and, through `promtool test rules`, that each alert fires on the series it is about and not on a quiet day;
 * every dashboard query is checked by promtool too (as a recording rule). kubeconform checks the PrometheusRule against
 * prometheus-operator's CRD. And every metric name the dashboard and the alerts use is one a running webhook really
 * exports on /metrics, or one of the few other exporters the README of deploy/monitoring names.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { findBuiltTool } from '../support/built-tools.js';
import { findDeployTools } from '../support/deploy-tools.js';
import { convertToKubeconformSchemas, schemaFileFor, SCHEMA_LOCATION_TEMPLATE } from '../support/kube-schemas.js';
import { findOnPath, requireTool, run, tempDir } from '../support/tools.js';
import { startWebhook, type WebhookServer } from '../support/webhook-server.js';

const MONITORING = fileURLToPath(new URL('../../deploy/monitoring/', import.meta.url));
const promtool = findBuiltTool('build-promtool.sh', 'promtool');
const deployTools = findDeployTools();

/** Metrics the dashboard and alerts may use that the webhook does not export, and who does (deploy/monitoring/README.md). */
const OTHER_EXPORTERS: Record<string, string> = {
  up: 'Prometheus',
  apiserver_admission_webhook_rejection_count: 'kube-apiserver',
  kube_pod_init_container_status_restarts_total: 'kube-state-metrics',
  certmanager_certificate_expiration_timestamp_seconds: 'cert-manager',
};

/** The version of prometheus-operator whose CRDs build-deploy-tools.sh pins (its ServiceMonitor CRD comes from there). */
const PROMETHEUS_OPERATOR = 'github.com/prometheus-operator/prometheus-operator@v0.85.0';

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects: identifiers that are neither functions (followed by `(`), keywords,
 * label names (inside `{…}` or a `by (…)` list), strings, durations nor Grafana variables.
 */
function metricNames(expr: string): string[] {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of text.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const before = text[m.index - 1];
    const after = text.slice(m.index + word.length).trimStart()[0];
    if (after === '(' || PROMQL_WORDS.has(word.toLowerCase())) continue;
    // 1e3, 5m and the like are numbers or durations.
    if (before !== undefined && /[0-9.]/.test(before)) continue;
    names.add(word);
  }
  return [...names];
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}
interface PrometheusRule {
  apiVersion: string;
  kind: string;
  spec: { groups: RuleGroup[] };
}
interface Dashboard {
  panels: Array<{ id: number; title: string; datasource: { uid: string }; targets: Array<{ expr: string; datasource: { uid: string } }> }>;
  templating: { list: Array<{ name: string; definition?: string }> };
}

let work: string;
let cleanup: (() => Promise<void>) | undefined;
let rule: PrometheusRule;
let dashboard: Dashboard;
let rulesFile: string;

function alertExprs(): string[] {
  return rule.spec.groups.flatMap((g) => g.rules.map((r) => r.expr));
}
function dashboardExprs(): string[] {
  const queries = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  const variables = dashboard.templating.list.flatMap((v) => (v.definition !== undefined ? [v.definition.replace(/^label_values\((.*),\s*\w+\)$/, '$1')] : []));
  return [...queries, ...variables];
}

beforeAll(async () => {
  const dir = await tempDir('imagegate-monitoring-');
  cleanup = dir.cleanup;
  work = dir.path;
  rule = parse(await readFile(path.join(MONITORING, 'prometheusrule.yaml'), 'utf8')) as PrometheusRule;
  dashboard = JSON.parse(await readFile(path.join(MONITORING, 'imagegate-dashboard.json'), 'utf8')) as Dashboard;
  // The PrometheusRule's spec is a Prometheus rules file as it stands.
  rulesFile = path.join(work, 'rules.yaml');
  await writeFile(rulesFile, stringify(rule.spec));
});

afterAll(async () => cleanup?.());

describe('the metric-name reader this test relies on', () => {
  it('finds selected metrics and nothing else', () => {
    expect(metricNames('sum by (le, hook) (rate(a_bucket{job=~"$job", x="y(z)"}[$__rate_interval])) / on(job) b_total offset 5m > 3 * (c or vector(0)) and 1e3 < d')).toEqual(['a_bucket', 'b_total', 'c', 'd']);
  });
});

describe('the Grafana dashboard', () => {
  it('asks one templated Prometheus data source, with unique panel ids', () => {
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      expect(p.datasource.uid, p.title).toBe('${datasource}');
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource.uid, p.title).toBe('${datasource}');
    }
  });

  it('shows decisions by rule and result, latency percentiles, the cache hit rate, look-up and Vault errors', () => {
    const used = new Set(dashboardExprs().flatMap(metricNames));
    for (const name of [
      'imagegate_admission_decisions_total',
      'imagegate_admission_duration_seconds_bucket',
      'imagegate_image_cache_hits_total',
      'imagegate_image_cache_misses_total',
      'imagegate_upstream_errors_total',
      'kube_pod_init_container_status_restarts_total',
    ]) {
      expect(used, name).toContain(name);
    }
    const exprs = dashboardExprs().join('\n');
    for (const q of ['0.5', '0.95', '0.99']) expect(exprs).toContain(`histogram_quantile(${q},`);
    expect(exprs).toMatch(/sum by \(rule, result\) \(rate\(imagegate_admission_decisions_total/);
  });
});

describe('the PrometheusRule alerts', () => {
  it('alert on the webhook being unavailable, a denial spike, look-up failures and certificate expiry', () => {
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual(
      expect.arrayContaining(['ImagegateWebhookDown', 'ImagegateDenialSpike', 'ImagegateLookUpFailures', 'ImagegateServingCertificateExpiresSoon', 'ImagegateCertificateExpiresSoon']),
    );
  });
});

describe.skipIf(!promtool)('promtool', () => {
  it('check rules: the alerts parse and are well-formed', async () => {
    const r = await run(promtool!, ['check', 'rules', rulesFile]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${alertExprs().length} rules found`);
  });

  it('check rules: every dashboard query is valid PromQL (Grafana variables filled in)', async () => {
    const queries = dashboardExprs().map((expr, i) => ({ record: `dashboard:query_${i}`, expr: expr.replace(/\$__rate_interval/g, '5m').replace(/\$job/g, '.*') }));
    const file = path.join(work, 'dashboard-queries.yaml');
    await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules: queries }] }));
    const r = await run(promtool!, ['check', 'rules', file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('test rules: each alert fires on what it is about, and not on a quiet day', async () => {
    const job = 'job="imagegate-webhook"';
    const decisions = `imagegate_admission_decisions_total{${job}, hook="validate", result="denied", rule="encryption-required"}`;
    // promtool compares rendered annotations too; their templates were checked above, here only when alerts fire.
    const bare = { groups: rule.spec.groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _, ...r }) => r) })) };
    await writeFile(path.join(work, 'rules-bare.yaml'), stringify(bare));
    const tests = {
      rule_files: ['rules-bare.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [{ series: `up{${job}, instance="a"}`, values: '0x15' }],
          alert_rule_test: [
            { eval_time: '1m', alertname: 'ImagegateWebhookDown', exp_alerts: [] },
            { eval_time: '5m', alertname: 'ImagegateWebhookDown', exp_alerts: [{ exp_labels: { severity: 'critical' } }] },
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: `imagegate_upstream_errors_total{${job}, hook="validate"}`, values: '0+10x30' },
            { series: `imagegate_admission_duration_seconds_count{${job}, hook="validate"}`, values: '0+20x30' },
          ],
          alert_rule_test: [{ eval_time: '20m', alertname: 'ImagegateLookUpFailures', exp_alerts: [{ exp_labels: { severity: 'warning' } }] }],
        },
        {
          interval: '1m',
          input_series: [
            { series: `imagegate_upstream_errors_total{${job}, hook="validate"}`, values: '0x30' },
            { series: `imagegate_admission_duration_seconds_count{${job}, hook="validate"}`, values: '0+20x30' },
          ],
          alert_rule_test: [{ eval_time: '20m', alertname: 'ImagegateLookUpFailures', exp_alerts: [] }],
        },
        {
          // A day without denials, then ten a minute.
          interval: '1m',
          input_series: [{ series: decisions, values: '0x1440 0+10x30' }],
          alert_rule_test: [{ eval_time: '1460m', alertname: 'ImagegateDenialSpike', exp_alerts: [{ exp_labels: { severity: 'warning' } }] }],
        },
        {
          // Denials at a steady rate are no spike.
          interval: '1m',
          input_series: [{ series: decisions, values: '0+10x1470' }],
          alert_rule_test: [{ eval_time: '1460m', alertname: 'ImagegateDenialSpike', exp_alerts: [] }],
        },
        {
          // The webhook's own report: one replica serves a certificate that runs out in 3 days.
          interval: '1m',
          input_series: [
            { series: 'imagegate_tls_certificate_expiry_timestamp_seconds{namespace="imagegate-system", pod="imagegate-a"}', values: `${3 * 86400}x180` },
            { series: 'imagegate_tls_certificate_expiry_timestamp_seconds{namespace="imagegate-system", pod="imagegate-b"}', values: `${90 * 86400}x180` },
          ],
          alert_rule_test: [
            {
              eval_time: '2h',
              alertname: 'ImagegateServingCertificateExpiresSoon',
              exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'imagegate-system', pod: 'imagegate-a' } }],
            },
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'certmanager_certificate_expiration_timestamp_seconds{namespace="imagegate-system", name="imagegate-serving"}', values: `${3 * 86400}x180` },
            { series: 'certmanager_certificate_expiration_timestamp_seconds{namespace="other", name="imagegate-later"}', values: `${60 * 86400}x180` },
          ],
          alert_rule_test: [
            {
              eval_time: '2h',
              alertname: 'ImagegateCertificateExpiresSoon',
              exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'imagegate-system', name: 'imagegate-serving' } }],
            },
          ],
        },
      ],
    };
    const file = path.join(work, 'rules.test.yaml');
    await writeFile(file, stringify(tests));
    const r = await run(promtool!, ['test', 'rules', file], { cwd: work });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });
});

/** prometheus-operator's PrometheusRule CRD, from the module build-deploy-tools.sh takes its ServiceMonitor CRD from. */
function prometheusRuleCrd(): string | undefined {
  const go = findOnPath('go') ?? findOnPath('/usr/local/go/bin/go');
  if (go === undefined) {
    if (process.env.CI === 'true') throw new Error('Go is needed under CI=true to fetch prometheus-operator\'s CRDs (go mod download)');
    return undefined;
  }
  const r = spawnSync(go, ['mod', 'download', '-json', PROMETHEUS_OPERATOR], { encoding: 'utf8', cwd: MONITORING, env: { ...process.env, GOWORK: 'off', GOFLAGS: '-mod=mod' } });
  if (r.status !== 0) throw new Error(`go mod download ${PROMETHEUS_OPERATOR} failed: ${r.stdout}${r.stderr}`);
  const dir = (JSON.parse(r.stdout) as { Dir: string }).Dir;
  return path.join(dir, 'example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml');
}

describe.skipIf(!deployTools)('kubeconform', () => {
  it("the PrometheusRule is valid against prometheus-operator's CRD, strictly", async (ctx) => {
    const crdFile = prometheusRuleCrd();
    // Only outside CI (prometheusRuleCrd throws under CI=true without Go): reported as skipped, not as passed.
    if (crdFile === undefined) return ctx.skip('no Go toolchain to fetch the CRD');
    const toolsDir = path.dirname(path.dirname(deployTools!.helm));
    const swagger: unknown = JSON.parse(await readFile(path.join(toolsDir, 'sources/kubernetes/swagger.json'), 'utf8'));
    const schemas = convertToKubeconformSchemas(swagger, [parse(await readFile(crdFile, 'utf8'))]);
    const file = schemaFileFor({ group: 'monitoring.coreos.com', version: 'v1', kind: 'PrometheusRule' });
    const schema = schemas.get(file);
    expect(schema, file).toBeDefined();
    const schemaDir = path.join(work, 'schemas');
    await mkdir(path.join(schemaDir, path.dirname(file)), { recursive: true });
    await writeFile(path.join(schemaDir, file), JSON.stringify(schema));
    const args = ['-strict', '-summary', '-output', 'json', '-schema-location', path.join(schemaDir, SCHEMA_LOCATION_TEMPLATE), path.join(MONITORING, 'prometheusrule.yaml')];
    const r = await run(deployTools!.kubeconform, args);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { summary: { valid: number } }).summary.valid).toBe(1);
    // And a typo is caught: the check is not a formality.
    const typo = path.join(work, 'typo.yaml');
    await writeFile(typo, (await readFile(path.join(MONITORING, 'prometheusrule.yaml'), 'utf8')).replace('    - name: imagegate-webhook', '    - nmae: imagegate-webhook'));
    expect((await run(deployTools!.kubeconform, [...args.slice(0, -1), typo])).code).not.toBe(0);
  });
});

describe.skipIf(!requireTool('openssl'))('metric names against a running webhook', () => {
  let webhook: WebhookServer;
  let exported: Set<string>;
  let metricsText: string;
  let served: string;

  beforeAll(async () => {
    served = path.join(work, 'webhook');
    await mkdir(served, { recursive: true });
    webhook = await startWebhook(served, 'apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nmode: enforce\nruntimeModel: pod\nrepositories: []\n', ['--no-pull-secrets']);
    // One review, so every series the webhook keeps has samples, not only its declaration.
    await webhook.reviewPod('validate', { containers: [{ name: 'app', image: 'registry.example/app:1' }] });
    const agent = new Agent({ connect: { ca: await readFile(path.join(served, 'webhook-tls/certs.d/ca.crt')) } });
    const res = await request(`${webhook.url}/metrics`, { dispatcher: agent });
    const text = (metricsText = await res.body.text());
    await agent.close();
    expect(res.statusCode).toBe(200);
    exported = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = m as unknown as [string, string, string];
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix);
      else exported.add(name);
    }
    for (const m of text.matchAll(/^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/gm)) exported.add(m[1]!);
  }, 60_000);

  afterAll(async () => webhook?.stop());

  it('reports when the certificate it serves expires, for the alert that covers every certificate mode', async () => {
    // The serving certificate test/support/webhook-server.ts made (makeTlsFiles: server.crt).
    const validTo = Date.parse(new X509Certificate(await readFile(path.join(served, 'webhook-tls', 'server.crt'))).validTo) / 1000;
    expect(metricsText).toContain(`imagegate_tls_certificate_expiry_timestamp_seconds ${validTo}\n`);
  });

  it('every name in the dashboard and the alerts is exported by the webhook, or by an exporter the README names', () => {
    expect(exported).toContain('imagegate_admission_decisions_total');
    const used = new Set([...dashboardExprs(), ...alertExprs()].flatMap(metricNames));
    const unknown = [...used].filter((n) => !exported.has(n) && OTHER_EXPORTERS[n] === undefined);
    expect(unknown, `not exported by the webhook (it exports ${[...exported].sort().join(', ')})`).toEqual([]);
    // The list of other exporters holds only what is used, so it cannot hide a misspelt webhook metric.
    expect(Object.keys(OTHER_EXPORTERS).filter((n) => !used.has(n))).toEqual([]);
    expect([...used].filter((n) => n.startsWith('imagegate_')).length).toBeGreaterThanOrEqual(7);
  });
});
