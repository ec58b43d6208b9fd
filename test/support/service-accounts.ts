/**
 * Kubernetes service-account identities as a cluster would issue them, for Vault's JWT auth with the cluster's
 * issuer keys: an RSA issuer key pair, and projected tokens signed with it.
 */
import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';

export const CLUSTER_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface ClusterIssuer {
  privateKey: KeyObject;
  /** For `auth/jwt/config` `jwt_validation_pubkeys`. */
  publicPem: string;
}

export function clusterIssuer(): ClusterIssuer {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey: pair.privateKey, publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A projected service-account token (RS256), shaped like the kubelet's. */
export function serviceAccountToken(issuer: ClusterIssuer, namespace: string, name: string, audience = 'vault'): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const header = b64({ alg: 'RS256', typ: 'JWT', kid: 'test' });
  const payload = b64({
    iss: CLUSTER_ISSUER,
    sub: `system:serviceaccount:${namespace}:${name}`,
    aud: [audience],
    iat: now,
    nbf: now,
    exp: now + 600,
    'kubernetes.io': { namespace, serviceaccount: { name, uid: `uid-${name}` }, pod: { name: `${name}-pod`, uid: 'pod-uid' } },
  });
  const signature = createSign('RSA-SHA256').update(`${header}.${payload}`).sign(issuer.privateKey).toString('base64url');
  return `${header}.${payload}.${signature}`;
}

/**
 * Vault's JWT auth set to trust `issuer`, and a role `role` that lets the service account NAMESPACE/NAME (audience
 * `vault`) log in with `policy` for ten minutes.
 */
export async function serviceAccountJwtRole(
  bao: { api(method: string, path: string, body?: unknown): Promise<unknown> },
  issuer: ClusterIssuer,
  role: string,
  serviceAccount: { namespace: string; name: string },
  policy: string,
): Promise<void> {
  await bao.api('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [issuer.publicPem], bound_issuer: CLUSTER_ISSUER });
  await bao.api('POST', `auth/jwt/role/${role}`, {
    role_type: 'jwt',
    user_claim: 'sub',
    bound_audiences: ['vault'],
    bound_subject: `system:serviceaccount:${serviceAccount.namespace}:${serviceAccount.name}`,
    token_policies: [policy],
    token_ttl: '10m',
  });
}
