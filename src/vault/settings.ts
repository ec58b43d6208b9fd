import { ImagegateError } from '../errors.js';
import { readUserFile } from '../util/user-file.js';

/** How imagegate logs in to Vault. Tokens and secrets live only in memory and are never logged. */
export type VaultAuth =
  | { method: 'token'; token: string }
  | { method: 'approle'; mount: string; roleId: string; secretId: string }
  /** JWT/OIDC auth with a CI identity token (GitHub Actions, GitLab) or a Kubernetes service-account token. */
  | { method: 'jwt'; mount: string; role: string; jwt: () => Promise<string> }
  /** Kubernetes auth: Vault checks the service-account token with the cluster's TokenReview API. */
  | { method: 'kubernetes'; mount: string; role: string; jwt: () => Promise<string> };

export interface VaultSettings {
  /** e.g. `https://vault.example:8200` */
  address: string;
  /** PEM CA bundle for Vault's TLS certificate. */
  ca?: string;
  /** Vault Enterprise / OpenBao namespace. */
  namespace?: string;
  auth: VaultAuth;
  /** Per-request timeout; short, because an admission webhook has seconds, not minutes. */
  timeoutMs?: number;
}

/** The default service-account token path in a pod. */
const SERVICE_ACCOUNT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Vault settings from the environment, with Vault's and OpenBao's own variable names where they exist, so CI
 * systems already set up for Vault need nothing new:
 *
 * - `VAULT_ADDR` / `BAO_ADDR`, `VAULT_CACERT` / `BAO_CACERT`, `VAULT_NAMESPACE` / `BAO_NAMESPACE`;
 * - `IMAGEGATE_VAULT_AUTH`: `token` (default when `VAULT_TOKEN`/`BAO_TOKEN` is set), `approle`, `jwt`, `kubernetes`;
 * - token: `VAULT_TOKEN` / `BAO_TOKEN`;
 * - approle: `VAULT_ROLE_ID`, `VAULT_SECRET_ID` (or `VAULT_SECRET_ID_FILE`), mount `IMAGEGATE_VAULT_AUTH_MOUNT` (default `approle`);
 * - jwt: `IMAGEGATE_VAULT_ROLE`, the token from `IMAGEGATE_VAULT_JWT`, `IMAGEGATE_VAULT_JWT_FILE`, GitLab's
 *   `VAULT_ID_TOKEN`, or GitHub Actions' OIDC endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, audience
 *   `IMAGEGATE_VAULT_AUDIENCE`); mount default `jwt`;
 * - kubernetes: `IMAGEGATE_VAULT_ROLE`, the token from `IMAGEGATE_VAULT_JWT_FILE` (default the pod's service-account
 *   token); mount default `kubernetes`.
 */
export async function vaultSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<VaultSettings> {
  const pick = (...names: string[]): string | undefined => names.map((n) => env[n]).find((v) => v !== undefined && v !== '');
  const address = pick('VAULT_ADDR', 'BAO_ADDR');
  if (address === undefined) throw new ImagegateError('USAGE', 'Vault recipients need VAULT_ADDR (or BAO_ADDR) set to the Vault server, e.g. https://vault.example:8200');
  const token = pick('VAULT_TOKEN', 'BAO_TOKEN');
  const method = pick('IMAGEGATE_VAULT_AUTH') ?? (token !== undefined ? 'token' : undefined);
  const mount = pick('IMAGEGATE_VAULT_AUTH_MOUNT');
  const role = pick('IMAGEGATE_VAULT_ROLE');
  const needRole = (m: string): string => {
    if (role === undefined) throw new ImagegateError('USAGE', `Vault ${m} auth needs IMAGEGATE_VAULT_ROLE, the Vault role to log in as`);
    return role;
  };
  let auth: VaultAuth;
  switch (method) {
    case 'token':
      if (token === undefined) throw new ImagegateError('USAGE', 'IMAGEGATE_VAULT_AUTH=token needs VAULT_TOKEN (or BAO_TOKEN)');
      auth = { method: 'token', token };
      break;
    case 'approle': {
      const roleId = pick('VAULT_ROLE_ID');
      const secretFile = pick('VAULT_SECRET_ID_FILE');
      const secretId = secretFile !== undefined ? (await readSecretFile(secretFile, 'VAULT_SECRET_ID_FILE')).trim() : pick('VAULT_SECRET_ID');
      if (roleId === undefined || secretId === undefined) {
        throw new ImagegateError('USAGE', 'Vault AppRole auth needs VAULT_ROLE_ID and VAULT_SECRET_ID (or VAULT_SECRET_ID_FILE)');
      }
      auth = { method: 'approle', mount: mount ?? 'approle', roleId, secretId };
      break;
    }
    case 'jwt':
      auth = { method: 'jwt', mount: mount ?? 'jwt', role: needRole('JWT'), jwt: jwtSource(env) };
      break;
    case 'kubernetes': {
      const file = pick('IMAGEGATE_VAULT_JWT_FILE') ?? SERVICE_ACCOUNT_TOKEN_FILE;
      auth = { method: 'kubernetes', mount: mount ?? 'kubernetes', role: needRole('Kubernetes'), jwt: () => readSecretFile(file, 'the service-account token').then((t) => t.trim()) };
      break;
    }
    case undefined:
      throw new ImagegateError('USAGE', 'no Vault credentials: set VAULT_TOKEN, or IMAGEGATE_VAULT_AUTH=approle|jwt|kubernetes with its settings');
    default:
      throw new ImagegateError('USAGE', `IMAGEGATE_VAULT_AUTH=${method} is not a login method; use token, approle, jwt or kubernetes`);
  }
  const caFile = pick('VAULT_CACERT', 'BAO_CACERT');
  const namespace = pick('VAULT_NAMESPACE', 'BAO_NAMESPACE');
  return {
    address: address.replace(/\/+$/, ''),
    auth,
    ...(caFile !== undefined ? { ca: await readSecretFile(caFile, 'VAULT_CACERT') } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
  };
}

/** Where a JWT login gets its token; read at every login, because CI and the kubelet rotate them. */
function jwtSource(env: NodeJS.ProcessEnv): () => Promise<string> {
  const inline = env.IMAGEGATE_VAULT_JWT ?? env.VAULT_ID_TOKEN;
  const file = env.IMAGEGATE_VAULT_JWT_FILE;
  if (file !== undefined && file !== '') return () => readSecretFile(file, 'IMAGEGATE_VAULT_JWT_FILE').then((t) => t.trim());
  if (inline !== undefined && inline !== '') return () => Promise.resolve(inline);
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (url !== undefined && bearer !== undefined) return () => githubActionsIdToken(url, bearer, env.IMAGEGATE_VAULT_AUDIENCE);
  return () =>
    Promise.reject(
      new ImagegateError('USAGE', 'Vault JWT auth needs a token: IMAGEGATE_VAULT_JWT, IMAGEGATE_VAULT_JWT_FILE, GitLab id_tokens VAULT_ID_TOKEN, or GitHub Actions with permissions id-token: write'),
    );
}

/** GitHub Actions hands out OIDC tokens from an endpoint rather than a variable. */
async function githubActionsIdToken(requestUrl: string, bearer: string, audience: string | undefined): Promise<string> {
  const { request } = await import('undici');
  const url = new URL(requestUrl);
  if (audience !== undefined) url.searchParams.set('audience', audience);
  const res = await request(url, { headers: { authorization: `bearer ${bearer}`, accept: 'application/json' } });
  // A refusal may come with an empty or HTML body: read it as text, so the status is what the user is told about.
  const text = await res.body.text();
  let value: unknown;
  try {
    value = (JSON.parse(text) as { value?: unknown }).value;
  } catch {
    value = undefined;
  }
  if (res.statusCode !== 200 || typeof value !== 'string') {
    throw new ImagegateError('AUTH', `GitHub Actions refused an ID token (HTTP ${res.statusCode}); the workflow needs "permissions: id-token: write"`);
  }
  return value;
}

function readSecretFile(file: string, what: string): Promise<string> {
  return readUserFile(file, (reason) => `cannot read ${what} at ${file} (${reason})`);
}
