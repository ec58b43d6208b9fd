import type { JsonObject } from '../image/validate.js';

/** How the webhook injects `imagegate init --check` (node model): the pod proves it can unwrap its images' keys. */
export interface CheckContainerSettings {
  /** imagegate's own image, by digest. */
  image: string;
  vaultAddress: string;
  /** Vault auth the pod's identity uses: JWT auth with the cluster's issuer keys, or Kubernetes auth. */
  authMethod: 'jwt' | 'kubernetes';
  authMount?: string;
  /** The Vault role workloads log in as; `{namespace}` and `{serviceAccount}` stand for the pod's (see forPod). */
  vaultRole: string;
  /** Audience of the projected service-account token the Vault role expects. */
  audience: string;
}

const ROLE_PLACEHOLDER = /\{(namespace|serviceAccount)\}/g;

/** Checks a role template once, at start-up: only `{namespace}` and `{serviceAccount}` may appear in braces. */
export function roleTemplateProblem(role: string): string | undefined {
  const rest = role.replace(ROLE_PLACEHOLDER, '');
  return /[{}]/.test(rest) ? `${JSON.stringify(role)} may use only {namespace} and {serviceAccount} as placeholders` : undefined;
}

/**
 * The settings for one pod: a role template becomes that pod's role, e.g. `{namespace}` → `shop`, so each team's
 * pods log in as its own Vault role (one `imagegate vault setup` workload role per namespace) under one webhook.
 */
export function forPod(settings: CheckContainerSettings, namespace: string, serviceAccount: string): CheckContainerSettings {
  const vaultRole = settings.vaultRole.replace(ROLE_PLACEHOLDER, (_, name: string) => (name === 'namespace' ? namespace : serviceAccount));
  return vaultRole === settings.vaultRole ? settings : { ...settings, vaultRole };
}

/** Containers the webhook injects are named with this prefix and run imagegate's own image. */
export const IMAGEGATE_CONTAINER_PREFIX = 'imagegate-';
export const CHECK_CONTAINER_NAME = 'imagegate-check';
export const TOKEN_VOLUME_NAME = 'imagegate-token';
const TOKEN_DIR = '/var/run/secrets/imagegate';

/** What imagegate's containers need to log in to Vault as the pod. */
function vaultEnv(settings: CheckContainerSettings): JsonObject[] {
  return [
    { name: 'VAULT_ADDR', value: settings.vaultAddress },
    { name: 'IMAGEGATE_VAULT_AUTH', value: settings.authMethod },
    { name: 'IMAGEGATE_VAULT_ROLE', value: settings.vaultRole },
    { name: 'IMAGEGATE_VAULT_JWT_FILE', value: `${TOKEN_DIR}/token` },
    ...(settings.authMount !== undefined ? [{ name: 'IMAGEGATE_VAULT_AUTH_MOUNT', value: settings.authMount }] : []),
  ];
}

const HARDENED = { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };

/** The init container, for the pod's images pinned by digest; the validating hook compares against exactly this. */
export function checkContainer(settings: CheckContainerSettings, images: string[]): JsonObject {
  return {
    name: CHECK_CONTAINER_NAME,
    image: settings.image,
    args: ['init', '--check', ...images.map((i) => `docker://${i}`)],
    env: vaultEnv(settings),
    volumeMounts: [{ name: TOKEN_VOLUME_NAME, mountPath: TOKEN_DIR, readOnly: true }],
    securityContext: HARDENED,
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  };
}

export const UNPACK_ROOT = '/imagegate/unpack';

/**
 * Pod model: the init container that decrypts, verifies and unpacks `image`'s encrypted layers into the volumes
 * the app container mounts at `paths`.
 */
export function unpackContainer(settings: CheckContainerSettings, containerName: string, image: string, paths: string[], volumes: string[]): JsonObject {
  return {
    name: `imagegate-unpack-${containerName}`.slice(0, 63),
    image: settings.image,
    args: ['init', '--unpack', UNPACK_ROOT, '--paths', paths.join(','), `docker://${image}`],
    env: vaultEnv(settings),
    volumeMounts: [
      { name: TOKEN_VOLUME_NAME, mountPath: TOKEN_DIR, readOnly: true },
      ...paths.map((p, i) => ({ name: volumes[i]!, mountPath: `${UNPACK_ROOT}/${p}` })),
    ],
    securityContext: HARDENED,
    resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  };
}

/** A projected token only for Vault (its own audience, 10 minutes), not the pod's API token. */
export function tokenVolume(settings: CheckContainerSettings): JsonObject {
  return { name: TOKEN_VOLUME_NAME, projected: { sources: [{ serviceAccountToken: { audience: settings.audience, expirationSeconds: 600, path: 'token' } }] } };
}

/**
 * Whether `spec` runs the check exactly as injected: first init container, same fields (the API server may add
 * defaults such as terminationMessagePath and imagePullPolicy, which are ignored), and the token volume.
 */
export function checkIsIntact(spec: JsonObject, expected: JsonObject, volume: JsonObject): string | undefined {
  const init = Array.isArray(spec.initContainers) ? (spec.initContainers as JsonObject[]) : [];
  const found = init[0];
  if (found === undefined || found.name !== CHECK_CONTAINER_NAME) {
    return `the ${CHECK_CONTAINER_NAME} init container is missing or not first`;
  }
  for (const field of Object.keys(expected)) {
    if (JSON.stringify(found[field]) !== JSON.stringify(expected[field])) return `the ${CHECK_CONTAINER_NAME} init container was altered (${field})`;
  }
  const volumes = Array.isArray(spec.volumes) ? (spec.volumes as JsonObject[]) : [];
  const v = volumes.find((x) => x.name === TOKEN_VOLUME_NAME);
  if (v === undefined || JSON.stringify(v.projected) !== JSON.stringify(volume.projected)) return `the ${TOKEN_VOLUME_NAME} volume is missing or altered`;
  return undefined;
}
