import type { JsonObject } from '../image/validate.js';

/**
 * Whether a container or volume the API server stored is the one imagegate injected, compared field by field and by
 * meaning (key order, quantity spelling), never as JSON text. A real API server returns the injected container with
 * keys reordered, defaults filled in and the service-account token mount added (issue 13); anything else that differs
 * is an alteration. The differences tolerated, each because it cannot change what runs or when:
 *
 * 1. Defaults the API server fills in when a field is absent (k8s.io/kubernetes pkg/apis/core/v1/defaults.go,
 *    v1.37): `imagePullPolicy` (IfNotPresent, or Always for `:latest`), `terminationMessagePath`
 *    (/dev/termination-log), `terminationMessagePolicy` (File), resource requests copied from limits, a projected
 *    volume's `defaultMode` (420) and a token projection's `expirationSeconds` (3600). They are applied to both sides
 *    first, so a default equal to what imagegate sets explicitly compares equal. And Go's `omitempty`, which
 *    drops an env entry's empty `value` (the kubelet reads an absent value as empty).
 * 2. Resource quantities in another spelling: the API server stores the canonical form (`0.5` → `500m`), rounded up
 *    to milli-units. Quantities are compared by value.
 * 3. Resource names imagegate does not set, in `requests` or `limits`: a namespace's LimitRange defaults, added by the
 *    LimitRanger admission plugin. Limits only constrain the check and requests only place the pod; neither can make
 *    the check pass. Every resource imagegate does set must keep its value.
 * 4. `imagePullPolicy: Always` where imagegate set IfNotPresent: the AlwaysPullImages admission plugin. The image is
 *    pinned by digest, so pulling again cannot change what runs.
 * 5. The service-account token mount the ServiceAccount admission plugin adds to every container (when the token is
 *    automounted): exactly `{name: kube-api-access-…, readOnly: true, mountPath: /var/run/secrets/kubernetes.io/
 *    serviceaccount}`, naming a projected volume of token, CA and namespace sources only. The plugin mounts the
 *    first volume whose name starts with `kube-api-access-`, whoever wrote it, so the volume is checked as well.
 */

/** Where the ServiceAccount admission plugin mounts the API token (plugin/pkg/admission/serviceaccount). */
const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const SERVICE_ACCOUNT_VOLUME_PREFIX = 'kube-api-access-';
/** The sources of the plugin's projected volume: the API token, the cluster CA, the namespace. */
const SERVICE_ACCOUNT_SOURCES = new Set(['serviceAccountToken', 'configMap', 'downwardAPI']);
/** v1.ProjectedVolumeSourceDefaultMode, 0644. */
const PROJECTED_DEFAULT_MODE = 420;
const TOKEN_DEFAULT_EXPIRATION_SECONDS = 3600;

/**
 * The fields of `found` (as stored by the API server) that differ from `expected` (as injected), beyond the tolerated
 * differences above; empty when they are the same container. `podVolumes` are the pod's volumes, to check the volume
 * behind a service-account mount. Fields only one side has are differences too.
 */
export function containerDifferences(found: JsonObject, expected: JsonObject, podVolumes: JsonObject[]): string[] {
  // Both sides: a field left to default is the default, whichever side left it.
  const have = withContainerDefaults(found);
  const want = withContainerDefaults(expected);
  const fields = [...new Set([...Object.keys(want), ...Object.keys(have)])].sort();
  return fields.filter((field) => {
    const a = have[field];
    const b = want[field];
    switch (field) {
      case 'imagePullPolicy':
        return !(sameJson(a, b) || (a === 'Always' && b === 'IfNotPresent'));
      case 'resources':
        return !sameResources(a, b);
      case 'env':
        return !sameJson(withoutEmptyValues(a), withoutEmptyValues(b));
      case 'volumeMounts':
        return !sameJson(withoutServiceAccountMount(a, podVolumes), b ?? []);
      default:
        return !sameJson(a, b);
    }
  });
}

/** Whether a pod volume is the one expected, after the API server's volume defaults. */
export function sameVolume(found: JsonObject | undefined, expected: JsonObject): boolean {
  return found !== undefined && sameJson(withVolumeDefaults(found), withVolumeDefaults(expected));
}

/** JSON values equal by meaning: objects regardless of key order (an absent key equals undefined), arrays in order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => sameJson(a[k], b[k]));
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** SetDefaults_Container, and SetDefaults_Pod's requests-from-limits, on a copy. */
function withContainerDefaults(container: JsonObject): JsonObject {
  const out: JsonObject = structuredClone(container);
  if (out.imagePullPolicy === undefined || out.imagePullPolicy === '') {
    out.imagePullPolicy = typeof out.image === 'string' && tagOf(out.image) === 'latest' ? 'Always' : 'IfNotPresent';
  }
  if (out.terminationMessagePath === undefined || out.terminationMessagePath === '') out.terminationMessagePath = '/dev/termination-log';
  if (out.terminationMessagePolicy === undefined || out.terminationMessagePolicy === '') out.terminationMessagePolicy = 'File';
  const resources = isObject(out.resources) ? out.resources : undefined;
  if (resources !== undefined && isObject(resources.limits)) {
    const requests: JsonObject = isObject(resources.requests) ? resources.requests : {};
    for (const [name, q] of Object.entries(resources.limits)) if (requests[name] === undefined) requests[name] = q;
    resources.requests = requests;
  }
  return out;
}

/** The tag of an image name as Kubernetes reads it: none for a digest, `latest` when absent. */
function tagOf(image: string): string | undefined {
  if (image.includes('@')) return undefined;
  const m = /:([^:/]+)$/.exec(image);
  return m === null ? 'latest' : m[1];
}

/** EnvVar.value is a Go string with omitempty: an empty value comes back absent, which the kubelet reads as empty. */
function withoutEmptyValues(env: unknown): unknown {
  return Array.isArray(env) ? env.map((e: unknown) => (isObject(e) && e.value === '' ? Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'value')) : e)) : env;
}

/** SetDefaults_ProjectedVolumeSource and SetDefaults_ServiceAccountTokenProjection, on a copy. */
function withVolumeDefaults(volume: JsonObject): JsonObject {
  const out: JsonObject = structuredClone(volume);
  if (!isObject(out.projected)) return out;
  if (out.projected.defaultMode === undefined) out.projected.defaultMode = PROJECTED_DEFAULT_MODE;
  for (const source of Array.isArray(out.projected.sources) ? out.projected.sources : []) {
    if (isObject(source) && isObject(source.serviceAccountToken) && source.serviceAccountToken.expirationSeconds === undefined) {
      source.serviceAccountToken.expirationSeconds = TOKEN_DEFAULT_EXPIRATION_SECONDS;
    }
  }
  return out;
}

/** Same requests and limits by value; extra resource names on the stored side (LimitRange defaults) are tolerated. */
function sameResources(found: unknown, expected: unknown): boolean {
  const a = isObject(found) ? found : {};
  const b = isObject(expected) ? expected : {};
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].every((key) => {
    if (key !== 'requests' && key !== 'limits') return sameJson(a[key], b[key]);
    const have = isObject(a[key]) ? a[key] : {};
    const want = isObject(b[key]) ? b[key] : {};
    return Object.entries(want).every(([name, q]) => sameQuantity(have[name], q));
  });
}

/** Kubernetes resource quantities equal by value, after the API server's rounding up to milli-units. */
export function sameQuantity(a: unknown, b: unknown): boolean {
  const x = milliUnits(a);
  const y = milliUnits(b);
  return x !== undefined && x === y;
}

const BINARY_SUFFIXES: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY = /^([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** A quantity (`64Mi`, `0.5`, `1e3`, `10m`; numbers too) in milli-units, rounded up; undefined if it is not one. */
function milliUnits(q: unknown): bigint | undefined {
  const text = typeof q === 'number' && Number.isFinite(q) ? String(q) : q;
  if (typeof text !== 'string') return undefined;
  const m = QUANTITY.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const [, sign, whole, fraction = '', suffix = ''] = m;
  let numerator = BigInt(`${whole}${fraction}` || '0') * 1000n;
  let denominator = 10n ** BigInt(fraction.length);
  const power10 = suffix in DECIMAL_SUFFIXES ? DECIMAL_SUFFIXES[suffix]! : /^[eE]/.test(suffix) ? Number(suffix.slice(1)) : 0;
  if (suffix in BINARY_SUFFIXES) numerator *= 1024n ** BigInt(BINARY_SUFFIXES[suffix]!);
  if (power10 >= 0) numerator *= 10n ** BigInt(power10);
  else denominator *= 10n ** BigInt(-power10);
  const rounded = (numerator + denominator - 1n) / denominator;
  return sign === '-' ? -rounded : rounded;
}

/**
 * `found`'s volume mounts without the one the ServiceAccount plugin adds: at most one mount at its path, of exactly
 * its shape, naming a `kube-api-access-…` volume that is projected from the plugin's kinds of source only.
 */
function withoutServiceAccountMount(mounts: unknown, podVolumes: JsonObject[]): unknown {
  if (!Array.isArray(mounts)) return mounts ?? [];
  const at = mounts.filter((m) => isObject(m) && m.mountPath === SERVICE_ACCOUNT_MOUNT_PATH);
  if (at.length !== 1) return mounts;
  const mount = at[0] as JsonObject;
  const name = typeof mount.name === 'string' ? mount.name : '';
  const shape = { name, readOnly: true, mountPath: SERVICE_ACCOUNT_MOUNT_PATH };
  if (!name.startsWith(SERVICE_ACCOUNT_VOLUME_PREFIX) || !sameJson(mount, shape)) return mounts;
  if (!isServiceAccountVolume(podVolumes.find((v) => v.name === name))) return mounts;
  return mounts.filter((m) => m !== mount);
}

function isServiceAccountVolume(volume: JsonObject | undefined): boolean {
  if (volume === undefined || !isObject(volume.projected) || Object.keys(volume).some((k) => k !== 'name' && k !== 'projected')) return false;
  const sources = volume.projected.sources;
  return Array.isArray(sources) && sources.every((s) => isObject(s) && Object.keys(s).length === 1 && SERVICE_ACCOUNT_SOURCES.has(Object.keys(s)[0]!));
}
