import type { JsonObject } from '../image/validate.js';
import { REGISTRY_CA_ENV } from '../transport/registry/trust.js';

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
  /** How `image` starts imagegate's CLI; default CHECK_COMMAND, the layout of deploy/Dockerfile's runtime image. */
  command?: string[];
  /** PEM CA certificates the injected containers trust for registry TLS (a private registry's CA). */
  registryCa?: string;
  /** Registries (loopback `host:port`) the injected containers may reach over plain HTTP: the policy's insecureRegistries. */
  insecureRegistries?: string[];
}

/**
 * The check's command, set explicitly rather than left to the image's entrypoint, so that it is part of what the
 * validating hook compares. deploy/Dockerfile's runtime ENTRYPOINT is the same (a unit test holds them together).
 */
export const CHECK_COMMAND = ['/nodejs/bin/node', '/opt/imagegate/dist/cli/imagegate.js'];

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

/** How imagegate's containers reach the registries: the CA they trust and the plain-HTTP loopback ones allowed. */
function registryArgs(settings: CheckContainerSettings): string[] {
  return (settings.insecureRegistries ?? []).flatMap((host) => ['--insecure-registry', host]);
}

/** What imagegate's containers need to log in to Vault as the pod, and to trust the registries' CA. */
function vaultEnv(settings: CheckContainerSettings): JsonObject[] {
  return [
    ...(settings.registryCa !== undefined ? [{ name: REGISTRY_CA_ENV, value: settings.registryCa }] : []),
    { name: 'VAULT_ADDR', value: settings.vaultAddress },
    { name: 'IMAGEGATE_VAULT_AUTH', value: settings.authMethod },
    { name: 'IMAGEGATE_VAULT_ROLE', value: settings.vaultRole },
    { name: 'IMAGEGATE_VAULT_JWT_FILE', value: `${TOKEN_DIR}/token` },
    ...(settings.authMount !== undefined ? [{ name: 'IMAGEGATE_VAULT_AUTH_MOUNT', value: settings.authMount }] : []),
  ];
}

/**
 * Variables Node.js and OpenSSL read at start-up that load other code or weaken TLS, pinned empty in the check: a
 * container's env entry beats anything envFrom supplies, and the validating hook refuses any other env or envFrom, so
 * the pod cannot reach them (`NODE_OPTIONS=--import=data:…process.exit(0)` would end the check with 0 before it ran).
 * Settings that need one of them (vaultEnv) override the empty value.
 */
const PINNED_RUNTIME_ENV = ['NODE_OPTIONS', 'NODE_PATH', 'NODE_EXTRA_CA_CERTS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'OPENSSL_CONF'];

/** One entry per name: a later entry replaces an earlier one (the kubelet would let the last one win). */
function mergedEnv(...entries: JsonObject[]): JsonObject[] {
  const byName = new Map<unknown, JsonObject>();
  for (const e of entries) byName.set(e.name, e);
  return [...byName.values()];
}

const HARDENED = { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };

/**
 * Node model: the init container that proves the pod's identity can unwrap the keys of its images (pinned by digest);
 * the validating hook compares against exactly this (check-integrity.ts).
 * Every field the API server would default is set, so what it stores is what was injected: the pull policy (the
 * image is pinned by digest), and the termination message taken from the log when the check fails, so that
 * `kubectl describe pod` shows why.
 */
export function keyAccessCheckContainer(settings: CheckContainerSettings, images: string[]): JsonObject {
  return {
    name: CHECK_CONTAINER_NAME,
    image: settings.image,
    command: settings.command ?? CHECK_COMMAND,
    args: ['init', '--check', ...registryArgs(settings), ...images.map((i) => `docker://${i}`)],
    env: mergedEnv(...PINNED_RUNTIME_ENV.map((name) => ({ name, value: '' })), ...vaultEnv(settings)),
    volumeMounts: [{ name: TOKEN_VOLUME_NAME, mountPath: TOKEN_DIR, readOnly: true }],
    securityContext: HARDENED,
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    imagePullPolicy: 'IfNotPresent',
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

const UNPACK_ROOT = '/imagegate/unpack';

/**
 * Pod model: the init container that decrypts, verifies and unpacks `image`'s encrypted layers into the volumes
 * the app container mounts at `paths`. Like the check, its log becomes the termination message when it fails, so
 * `kubectl describe pod` says why the pod failed (a real kubelet shows nothing otherwise: the CLI writes no
 * /dev/termination-log).
 */
export function unpackContainer(settings: CheckContainerSettings, containerName: string, image: string, paths: string[], volumes: string[]): JsonObject {
  return {
    name: `imagegate-unpack-${containerName}`.slice(0, 63),
    image: settings.image,
    command: settings.command ?? CHECK_COMMAND,
    args: ['init', '--unpack', UNPACK_ROOT, '--paths', paths.join(','), ...registryArgs(settings), `docker://${image}`],
    env: mergedEnv(...PINNED_RUNTIME_ENV.map((name) => ({ name, value: '' })), ...vaultEnv(settings)),
    volumeMounts: [
      { name: TOKEN_VOLUME_NAME, mountPath: TOKEN_DIR, readOnly: true },
      ...paths.map((p, i) => ({ name: volumes[i]!, mountPath: `${UNPACK_ROOT}/${p}` })),
    ],
    securityContext: HARDENED,
    resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
    imagePullPolicy: 'IfNotPresent',
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** A projected token only for Vault (its own audience, 10 minutes), not the pod's API token; defaults spelled out. */
export function tokenVolume(settings: CheckContainerSettings): JsonObject {
  return {
    name: TOKEN_VOLUME_NAME,
    projected: { defaultMode: 420, sources: [{ serviceAccountToken: { audience: settings.audience, expirationSeconds: 600, path: 'token' } }] },
  };
}

/**
 * Whether `container` takes a name reserved for what imagegate injects: `imagegate-check`, or any `imagegate-` name
 * running imagegate's own image (which the policy does not judge). The mutating hook replaces such containers and the
 * validating hook refuses them, so a pod can never bring its own check.
 */
export function isReservedContainer(container: JsonObject, checkImage: string): boolean {
  const name = typeof container.name === 'string' ? container.name : '';
  return name === CHECK_CONTAINER_NAME || (name.startsWith(IMAGEGATE_CONTAINER_PREFIX) && container.image === checkImage);
}
