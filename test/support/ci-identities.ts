/**
 * OIDC tokens shaped like the ones CI systems give a job, signed with a local key, for Vault's JWT auth in tests:
 * GitHub Actions (`repository`, `ref`, `sub` = repo:OWNER/REPO:ref:REF) and GitLab (`project_path`,
 * `ref_protected`, …), with the real claim names the Vault roles bind.
 */
import { createSign, type KeyObject } from 'node:crypto';

/** An RS256 JWT, as GitHub Actions, GitLab and Kubernetes issue them, valid for five minutes. */
function signJwt(key: KeyObject, kid: string, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${b64({ iat: now, nbf: now, exp: now + 300, ...claims })}`;
  return `${body}.${createSign('RSA-SHA256').update(body).sign(key).toString('base64url')}`;
}

export function githubActionsToken(key: KeyObject, issuer: string, audience: string, claims: { repository: string; ref: string }): string {
  return signJwt(key, 'github', {
    iss: issuer,
    aud: audience,
    sub: `repo:${claims.repository}:ref:${claims.ref}`,
    repository_owner: claims.repository.split('/')[0],
    ref_type: 'branch',
    sha: 'f'.repeat(40),
    actor: 'octocat',
    ...claims,
  });
}

export function gitlabCiToken(key: KeyObject, issuer: string, audience: string, claims: { project_path: string; ref_protected: 'true' | 'false' }): string {
  return signJwt(key, 'gitlab', {
    iss: issuer,
    aud: audience,
    sub: `project_path:${claims.project_path}:ref_type:branch:ref:main`,
    project_id: '42',
    namespace_path: claims.project_path.split('/').slice(0, -1).join('/'),
    ref: 'main',
    ref_type: 'branch',
    user_login: 'dev',
    pipeline_id: '1001',
    ...claims,
  });
}
