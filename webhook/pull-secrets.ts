import { readFile } from 'node:fs/promises';
import type { Agent } from 'undici';
import type { PullSecretLookup } from '../src/admission/resolver.js';
import { TtlCache } from '../src/admission/ttl-cache.js';
import { credentialsFromAuths } from '../src/transport/registry/credentials.js';
import { loadUndici } from '../src/util/load-undici.js';

/** Where the Kubernetes API is and how the webhook authenticates to it (in a pod: its service account). */
export interface KubernetesApi {
  url: string;
  tokenFile: string;
  caFile: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The in-cluster API from the pod's environment, or undefined outside a cluster. */
export function inClusterApi(env: NodeJS.ProcessEnv = process.env): KubernetesApi | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (host === undefined || host === '') return undefined;
  return { url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, tokenFile: `${SA_DIR}/token`, caFile: `${SA_DIR}/ca.crt` };
}

interface SecretObject {
  type?: string;
  data?: Record<string, string>;
}

/**
 * Reads a pod's image pull secrets through the Kubernetes API, where RBAC lets the webhook `get` secrets in that
 * namespace. A secret it may not read (403) or that is missing is skipped: the webhook's own credentials are
 * tried instead, as the kubelet would with the node's. Secrets are cached briefly and never logged.
 */
export function kubernetesPullSecrets(api: KubernetesApi, log: (msg: string) => void = () => {}): PullSecretLookup {
  let agent: Agent | undefined;
  const secrets = new TtlCache<SecretObject | undefined>({ maxEntries: 1000, ttlMs: 60_000, negativeTtlMs: 10_000 });
  const fetchSecret = async (namespace: string, name: string): Promise<SecretObject | undefined> => {
    const { Agent, request } = await loadUndici();
    agent ??= new Agent({ connect: { ca: await readFile(api.caFile) } });
    // The token is re-read each time: the kubelet rotates projected tokens.
    const token = (await readFile(api.tokenFile, 'utf8')).trim();
    const res = await request(`${api.url}/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    if (res.statusCode === 403 || res.statusCode === 404) {
      await res.body.dump();
      log(`pull secret ${namespace}/${name}: ${res.statusCode === 403 ? 'not allowed to read it' : 'not found'}; using the webhook's own credentials`);
      return undefined;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`reading pull secret ${namespace}/${name} from the Kubernetes API answered HTTP ${res.statusCode}`);
    }
    return (await res.body.json()) as SecretObject;
  };
  return async (namespace, names, host) => {
    for (const name of names) {
      const secret = await secrets.get(`${namespace}/${name}`, () => fetchSecret(namespace, name));
      const auths = authsOf(secret);
      const found = auths !== undefined ? credentialsFromAuths(auths, host, '', `pull secret ${namespace}/${name}`) : undefined;
      if (found !== undefined) return found;
    }
    return undefined;
  };
}

/** `auths` of a dockerconfigjson secret, or the whole object of a legacy dockercfg one. */
function authsOf(secret: SecretObject | undefined): unknown {
  const data = secret?.data ?? {};
  try {
    if (secret?.type === 'kubernetes.io/dockerconfigjson' && data['.dockerconfigjson'] !== undefined) {
      return (JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString('utf8')) as { auths?: unknown }).auths;
    }
    if (secret?.type === 'kubernetes.io/dockercfg' && data['.dockercfg'] !== undefined) {
      return JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString('utf8'));
    }
  } catch {
    return undefined;
  }
  return undefined;
}
