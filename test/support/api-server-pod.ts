/**
 * A pod as a real kube-apiserver (v1.37) hands it to a validating webhook, built from the API server's own code paths
 * (read in k8s.io/kubernetes v1.37.2) rather than pasted from one run:
 *
 * - the ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount/admission.go, mountServiceAccountToken):
 *   a `kube-api-access-XXXXX` projected volume (token 3607 s, kube-root-ca.crt, the namespace), mounted read-only at
 *   /var/run/secrets/kubernetes.io/serviceaccount in every init container and container that has nothing mounted
 *   there (imagegate's check included, as the cluster run showed), and `serviceAccountName: default` when unset;
 * - DefaultTolerationSeconds and Priority admission: the not-ready/unreachable tolerations, priority 0;
 * - defaulting (pkg/apis/core/v1/defaults.go): SetDefaults_Container (imagePullPolicy, terminationMessagePath,
 *   terminationMessagePolicy), requests copied from limits, SetDefaults_PodSpec, enableServiceLinks, a projected
 *   volume's defaultMode 420, a token projection's expirationSeconds 3600, fieldRef apiVersion v1;
 * - serialisation: Go writes struct fields in declaration order (k8s.io/api/core/v1 types.go) and map keys sorted, so
 *   keys come back in another order than the webhook wrote them.
 */
type Json = Record<string, any>;

const SA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ApiServerOptions {
  /** The five characters the API server's name generator picks (from bcdfghjklmnpqrstvwxz2456789). */
  tokenSuffix?: string;
}

/**
 * A user's pod created through the API server, with `mutate` standing for the mutating webhooks (it returns the
 * patched pod), in the order a real one runs them: decoding with defaults; the in-tree mutating plugins (the
 * ServiceAccount plugin adds its volume and mounts); the webhooks; the patched object decoded again with defaults;
 * the in-tree plugins again (re-invocation: now the injected check gets the token mount too) and the webhooks with
 * `reinvocationPolicy: IfNeeded` again. What comes out is what the validating webhooks receive. A kube-apiserver
 * v1.37.2 run (SA plugin volume first, the check's mount last, env entries without empty values, `0.5Gi` stored as
 * `512Mi`, imagegate's hook called twice) matched this sequence.
 */
export async function throughApiServer(pod: Json, mutate: (pod: Json) => Promise<Json>, options: ApiServerOptions = {}): Promise<Json> {
  const name = `kube-api-access-${options.tokenSuffix ?? 'x7k2q'}`;
  const admitted = (p: Json): Json => ({ ...p, spec: defaulted(inTreePlugins(p.spec, name)) });
  const once = await mutate(admitted({ ...pod, spec: defaulted(structuredClone(pod.spec)) }));
  const again = await mutate(admitted({ ...once, spec: defaulted(structuredClone(once.spec)) }));
  return stored(again.metadata, defaulted(structuredClone(again.spec)));
}

/** A pod already mutated (`{metadata, spec}`) after the in-tree plugins and defaulting, as the validating hook gets it. */
export function storedByApiServer(pod: Json, options: ApiServerOptions = {}): Json {
  const spec = inTreePlugins(structuredClone(pod.spec), `kube-api-access-${options.tokenSuffix ?? 'x7k2q'}`);
  return stored(pod.metadata, defaulted(spec));
}

function stored(metadata: Json | undefined, spec: Json): Json {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { ...structuredClone(metadata ?? {}), uid: 'a3e1c1d4-0000-4000-8000-000000000001', creationTimestamp: '2026-12-05T10:00:00Z' },
    spec: inGoOrder('PodSpec', spec),
    status: { phase: 'Pending', qosClass: 'Burstable' },
  };
}

/** ServiceAccount, DefaultTolerationSeconds and Priority admission, on `spec` (changed in place and returned). */
function inTreePlugins(spec: Json, tokenVolumeName: string): Json {
  serviceAccountAdmission(spec, tokenVolumeName);
  spec.tolerations ??= [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ];
  spec.priority ??= 0;
  spec.preemptionPolicy ??= 'PreemptLowerPriority';
  return spec;
}

function serviceAccountAdmission(spec: Json, generatedName: string): void {
  if (!spec.serviceAccountName) spec.serviceAccountName = 'default';
  if (spec.automountServiceAccountToken === false) return;
  const existing = (spec.volumes ?? []).find((v: Json) => String(v.name).startsWith('kube-api-access-'));
  const name: string = existing?.name ?? generatedName;
  let needsVolume = false;
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    if ((c.volumeMounts ?? []).some((m: Json) => m.mountPath === SA_PATH)) continue;
    (c.volumeMounts ??= []).push({ name, readOnly: true, mountPath: SA_PATH });
    needsVolume = true;
  }
  if (existing === undefined && needsVolume) (spec.volumes ??= []).push(serviceAccountVolume(name));
}

/** The projected volume the ServiceAccount admission plugin adds for the token, as kube-apiserver writes it. */
export function serviceAccountVolume(name: string): Json {
  return {
    name,
    projected: {
      defaultMode: 420,
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

/** Defaulting on decode, then what Go's encoder writes back (omitempty, canonical quantities); in place. */
function defaulted(spec: Json): Json {
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    if (!c.imagePullPolicy) c.imagePullPolicy = /@|:(?!latest$)[^:/]+$/.test(c.image) ? 'IfNotPresent' : 'Always';
    c.terminationMessagePath ||= '/dev/termination-log';
    c.terminationMessagePolicy ||= 'File';
    // A Go struct, not a pointer: always written, empty or not.
    c.resources ??= {};
    if (c.resources.limits !== undefined) {
      c.resources.requests ??= {};
      for (const [k, v] of Object.entries(c.resources.limits)) c.resources.requests[k] ??= v;
    }
    for (const list of [c.resources.limits, c.resources.requests]) for (const k of Object.keys(list ?? {})) list[k] = canonicalQuantity(String(list[k]));
    for (const e of c.env ?? []) if (e.valueFrom?.fieldRef !== undefined) e.valueFrom.fieldRef.apiVersion ??= 'v1';
    // Go's omitempty on non-pointer fields: empty strings, false and empty lists are not written back.
    for (const e of c.env ?? []) if (e.value === '') delete e.value;
    for (const m of c.volumeMounts ?? []) if (m.readOnly === false) delete m.readOnly;
    for (const k of ['workingDir', 'stdin', 'stdinOnce', 'tty', 'command', 'args', 'env', 'envFrom', 'volumeMounts']) {
      if (c[k] === '' || c[k] === false || (Array.isArray(c[k]) && c[k].length === 0)) delete c[k];
    }
  }
  for (const v of spec.volumes ?? []) {
    if (v.projected !== undefined) {
      v.projected.defaultMode ??= 420;
      for (const s of v.projected.sources ?? []) if (s.serviceAccountToken !== undefined) s.serviceAccountToken.expirationSeconds ??= 3600;
    }
    if (v.configMap !== undefined) v.configMap.defaultMode ??= 420;
    if (v.secret !== undefined) v.secret.defaultMode ??= 420;
  }
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.serviceAccount = spec.serviceAccountName;
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  spec.enableServiceLinks ??= true;
  return spec;
}

/**
 * resource.Quantity's canonical form for the plain and suffixed spellings (apimachinery pkg/api/resource): a binary
 * suffix stays binary with the largest suffix that keeps the number whole (`0.5Gi` → `512Mi`); a decimal one takes
 * the largest power of 1000 that keeps it whole (`0.01` → `10m`, `1000m` → `1`), rounded up to milli-units first.
 */
function canonicalQuantity(q: string): string {
  const m = /^(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/.exec(q);
  if (m === null) return q;
  const [, whole = '', fraction = '', suffix = ''] = m;
  const binary = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'].indexOf(suffix) + 1;
  const decimal: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
  // The value in milli-units, rounded up as SetDefaults_ResourceList does.
  let num = BigInt(`${whole}${fraction}` || '0') * 1000n * 1024n ** BigInt(binary);
  let den = 10n ** BigInt(fraction.length);
  const p10 = binary > 0 ? 0 : decimal[suffix]!;
  if (p10 >= 0) num *= 10n ** BigInt(p10);
  else den *= 10n ** BigInt(-p10);
  const milli = (num + den - 1n) / den;
  if (milli === 0n) return '0';
  if (binary > 0 && milli % 1000n === 0n) {
    let units = milli / 1000n;
    let k = 0;
    while (k < 6 && units >= 1024n && units % 1024n === 0n) {
      units /= 1024n;
      k++;
    }
    if (k > 0 || units < 1024n) return `${units}${['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'][k]}`;
  }
  let value = milli;
  let e = -3;
  while (value !== 0n && value % 1000n === 0n && e < 18) {
    value /= 1000n;
    e += 3;
  }
  return `${value}${{ '-3': 'm', '0': '', '3': 'k', '6': 'M', '9': 'G', '12': 'T', '15': 'P', '18': 'E' }[String(e)]}`;
}

/** Struct field order of the k8s.io/api/core/v1 types the check touches; other keys (map keys) sorted. */
const GO_ORDER: Record<string, string[]> = {
  PodSpec: ['volumes', 'initContainers', 'containers', 'ephemeralContainers', 'restartPolicy', 'terminationGracePeriodSeconds', 'activeDeadlineSeconds', 'dnsPolicy', 'nodeSelector', 'serviceAccountName', 'serviceAccount', 'automountServiceAccountToken', 'nodeName', 'hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace', 'securityContext', 'imagePullSecrets', 'hostname', 'subdomain', 'affinity', 'schedulerName', 'tolerations', 'hostAliases', 'priorityClassName', 'priority', 'dnsConfig', 'readinessGates', 'runtimeClassName', 'enableServiceLinks', 'preemptionPolicy'],
  Container: ['name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'resizePolicy', 'restartPolicy', 'restartPolicyRules', 'volumeMounts', 'volumeDevices', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle', 'terminationMessagePath', 'terminationMessagePolicy', 'imagePullPolicy', 'securityContext', 'stdin', 'stdinOnce', 'tty'],
  VolumeMount: ['name', 'readOnly', 'recursiveReadOnly', 'mountPath', 'subPath', 'mountPropagation', 'subPathExpr'],
  SecurityContext: ['capabilities', 'privileged', 'seLinuxOptions', 'windowsOptions', 'runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'procMount', 'seccompProfile', 'appArmorProfile'],
  Capabilities: ['add', 'drop'],
  ResourceRequirements: ['limits', 'requests', 'claims'],
  EnvVar: ['name', 'value', 'valueFrom'],
  Projected: ['sources', 'defaultMode'],
  TokenProjection: ['audience', 'expirationSeconds', 'path'],
  ConfigMapProjection: ['name', 'items', 'optional'],
  DownwardAPIFile: ['path', 'fieldRef', 'resourceFieldRef', 'mode'],
  Toleration: ['key', 'operator', 'value', 'effect', 'tolerationSeconds'],
};

/** Rewrites `value` (of Go type `type`) with its keys in the order Go's encoder writes them. */
function inGoOrder(type: string, value: any): any {
  if (Array.isArray(value)) return value.map((v) => inGoOrder(type, v));
  if (typeof value !== 'object' || value === null) return value;
  const order = GO_ORDER[type];
  const keys = Object.keys(value).sort((a, b) => rank(order, a) - rank(order, b) || (a < b ? -1 : a > b ? 1 : 0));
  const out: Json = {};
  for (const k of keys) out[k] = inGoOrder(childType(type, k), value[k]);
  return out;
}

function rank(order: string[] | undefined, key: string): number {
  const i = order?.indexOf(key) ?? -1;
  return i < 0 ? 1000 : i;
}

function childType(parent: string, key: string): string {
  if (parent === 'PodSpec' && (key === 'initContainers' || key === 'containers')) return 'Container';
  if (parent === 'PodSpec' && key === 'volumes') return 'Volume';
  if (parent === 'PodSpec' && key === 'tolerations') return 'Toleration';
  if (parent === 'Container') return { volumeMounts: 'VolumeMount', securityContext: 'SecurityContext', resources: 'ResourceRequirements', env: 'EnvVar' }[key] ?? 'map';
  if (parent === 'SecurityContext' && key === 'capabilities') return 'Capabilities';
  if (parent === 'Volume' && key === 'projected') return 'Projected';
  if (parent === 'Projected' && key === 'sources') return 'Projection';
  if (parent === 'Projection' && key === 'serviceAccountToken') return 'TokenProjection';
  if (parent === 'Projection' && key === 'configMap') return 'ConfigMapProjection';
  if (parent === 'Projection' && key === 'downwardAPI') return 'DownwardAPIProjection';
  if (parent === 'DownwardAPIProjection' && key === 'items') return 'DownwardAPIFile';
  return 'map';
}

/** RFC 6902 add, replace and remove, as the API server applies a webhook's patch. */
export function applyJsonPatch<T>(doc: T, patch: Array<{ op: string; path: string; value?: unknown }>): T {
  const out: any = structuredClone(doc);
  for (const op of patch) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let node: any = out;
    for (const p of parts) node = node[p];
    if (Array.isArray(node)) {
      const i = last === '-' ? node.length : Number(last);
      if (op.op === 'add') node.splice(i, 0, op.value);
      else if (op.op === 'remove') node.splice(i, 1);
      else node[i] = op.value;
    } else if (op.op === 'remove') {
      delete node[last];
    } else {
      node[last] = op.value;
    }
  }
  return out;
}
