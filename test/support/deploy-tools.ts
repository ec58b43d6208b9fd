/**
 * The tools the deployment tests use — helm, kubeconform, actionlint — and strict Kubernetes schema validation with
 * them. test/infra/build-deploy-tools.sh builds the tools and fetches the schema sources (Kubernetes' swagger.json,
 * the ServiceMonitor and cert-manager CRDs) into one cache directory; as with every built tool, a local run without it
 * skips (with a hint) and a CI run builds it or fails. See kube-schemas.ts for how the sources become schemas.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { findBuiltTool } from './built-tools.js';
import { ensureKubeconformSchemas, schemaDirFor, SCHEMA_LOCATION_TEMPLATE } from './kube-schemas.js';
import { run } from './tools.js';

export interface DeployTools {
  /** Absolute paths of the binaries; they need nothing on PATH. */
  helm: string;
  kubeconform: string;
  actionlint: string;
  /**
   * Strict kubeconform schemas, laid out for SCHEMA_LOCATION_TEMPLATE; made on the first `validateManifests` (or
   * `kubeconformSchemaLocation`) call, so it may not exist before.
   */
  schemaDir: string;
  /** The Kubernetes release the built-in kinds' schemas come from, e.g. "v1.35.4". */
  kubernetesVersion: string;
}

let found: DeployTools | undefined;

/**
 * The deploy tools, or undefined when they are not built (locally; the hint goes to stderr) so suites can
 * `describe.skipIf(!tools)`. Under CI=true a missing build is made here, and a failed one throws.
 */
export function findDeployTools(): DeployTools | undefined {
  if (found) return found;
  const helm = findBuiltTool('build-deploy-tools.sh', 'helm, kubeconform and actionlint');
  if (helm === undefined) return undefined;
  const bin = path.dirname(helm);
  const dir = path.dirname(bin);
  const versions = Object.fromEntries(
    readFileSync(path.join(dir, 'versions.env'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  const kubernetesVersion = versions.KUBERNETES_VERSION;
  if (kubernetesVersion === undefined) throw new Error(`${dir}/versions.env has no KUBERNETES_VERSION`);
  found = {
    helm,
    kubeconform: path.join(bin, 'kubeconform'),
    actionlint: path.join(bin, 'actionlint'),
    schemaDir: schemaDirFor(dir),
    kubernetesVersion,
  };
  return found;
}

/**
 * kubeconform's `-schema-location` for the tools' schemas (made now if need be). For callers that run kubeconform
 * themselves; pass it as the only schema location, and keep `-strict` and away from `-ignore-missing-schemas`.
 */
async function kubeconformSchemaLocation(tools: DeployTools): Promise<string> {
  const dir = await ensureKubeconformSchemas(path.dirname(tools.schemaDir));
  if (dir !== tools.schemaDir) throw new Error(`schemas went to ${dir}, not ${tools.schemaDir}`);
  return path.join(dir, SCHEMA_LOCATION_TEMPLATE);
}

export interface ValidatedResource {
  kind: string;
  /** metadata.name, "" if none. */
  name: string;
  /** kubeconform's verdict: "valid", "invalid" (breaks its schema) or "error" (no schema, unparseable, ...). */
  status: 'valid' | 'invalid' | 'error' | 'skipped';
  /** Why it is not valid, with the failing paths. */
  msg?: string;
}

export interface ManifestValidation {
  /** At least one resource, and every resource valid: an empty render is not a pass. */
  ok: boolean;
  resources: ValidatedResource[];
  /** One line for an assertion message: the counts, then each resource that is not valid and why. */
  summary: string;
}

interface KubeconformOutput {
  resources: Array<{
    kind: string;
    name: string;
    version: string;
    status: string;
    msg: string;
  }>;
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

const STATUSES: Record<string, ValidatedResource['status']> = {
  statusValid: 'valid',
  statusInvalid: 'invalid',
  statusError: 'error',
  statusSkipped: 'skipped',
};

/**
 * The leaf causes of a kubeconform message ("at '/spec/replicas': got string, want integer; at ..."), or the message
 * itself when it has none. kubeconform's own validationErrors stop at the first level ("/spec: validation failed").
 */
function describeFailure(msg: string): string {
  const causes = msg
    .split(/\s+- at /)
    .slice(1)
    .map((cause) => `at ${cause.trim()}`)
    .filter((cause) => !cause.endsWith(': validation failed'));
  return causes.length > 0 ? causes.join('; ') : msg;
}

/**
 * Validates the YAML documents in `yamlText` (e.g. `helm template` output) with kubeconform in strict mode against
 * the local schemas only: an unknown field, a wrong type or a missing required field makes a resource invalid, and a
 * kind without a schema (neither Kubernetes' own nor one of the CRDs) is an error, not a skip. Never throws for bad
 * manifests; throws when kubeconform itself cannot run.
 */
export async function validateManifests(tools: DeployTools, yamlText: string): Promise<ManifestValidation> {
  const location = await kubeconformSchemaLocation(tools);
  // -n 1: one worker, so resources are reported in the order of the input.
  const args = ['-strict', '-summary', '-verbose', '-output', 'json', '-n', '1', '-schema-location', location];
  args.push('-kubernetes-version', tools.kubernetesVersion.replace(/^v/, ''), '-');
  const result = await run(tools.kubeconform, args, { input: yamlText });
  let output: KubeconformOutput;
  try {
    output = JSON.parse(result.stdout) as KubeconformOutput;
  } catch {
    const status = result.code ?? result.signal;
    throw new Error(`kubeconform exited with ${status} without a JSON report:\n${result.stdout}\n${result.stderr}`);
  }
  // An empty document (status "") is neither a pass nor a failure.
  const resources = output.resources.filter((r) => r.status !== '').map((r): ValidatedResource => {
    const status = STATUSES[r.status];
    if (status === undefined) throw new Error(`kubeconform reported an unknown status ${r.status}`);
    const msg = describeFailure(r.msg);
    return { kind: r.kind, name: r.name, status, ...(msg ? { msg } : {}) };
  });
  const ok = resources.length > 0 && resources.every((r) => r.status === 'valid');
  const { valid, invalid, errors, skipped } = output.summary;
  const problems = resources
    .filter((r) => r.status !== 'valid')
    .map((r) => `${r.kind}/${r.name} ${r.status}: ${r.msg ?? ''}`);
  const summary = [`${valid} valid, ${invalid} invalid, ${errors} errors, ${skipped} skipped`, ...problems].join('; ');
  return { ok, resources, summary };
}

export interface WorkflowProblem {
  line: number;
  column: number;
  /** actionlint's rule, e.g. "syntax-check", "expression", "action". */
  kind: string;
  message: string;
}

export interface WorkflowLint {
  ok: boolean;
  problems: WorkflowProblem[];
  /** One line for an assertion message: `LINE:COL [kind] message; ...`, or "no problems". */
  summary: string;
}

/**
 * Lints one GitHub Actions workflow (its YAML text) with actionlint. shellcheck and pyflakes are left out whether or
 * not the machine has them, so the verdict is the same everywhere; `filename` only labels the report.
 */
export async function lintWorkflow(
  tools: DeployTools,
  yamlText: string,
  filename = 'workflow.yml',
): Promise<WorkflowLint> {
  const args = ['-shellcheck=', '-pyflakes=', '-no-color', '-format', '{{json .}}', '-stdin-filename', filename, '-'];
  const result = await run(tools.actionlint, args, { input: yamlText });
  // Exit 0: no problems; 1: problems found; anything else: actionlint itself failed.
  if (result.code !== 0 && result.code !== 1) {
    throw new Error(`actionlint exited with ${result.code ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
  }
  const reported = JSON.parse(result.stdout || '[]') as WorkflowProblem[];
  const problems = reported.map(({ line, column, kind, message }) => ({ line, column, kind, message }));
  const summary = problems.map((p) => `${p.line}:${p.column} [${p.kind}] ${p.message}`).join('; ') || 'no problems';
  return { ok: result.code === 0 && problems.length === 0, problems, summary };
}
