/**
 * The CI examples in deploy/ci: the GitHub Actions workflow passes actionlint (built from its Go module), and both
 * examples keep the shape the docs promise — the plaintext image never pushed, Vault reached through the pipeline's
 * OIDC token, registry credentials in a private file rather than on a command line.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findDeployTools, lintWorkflow } from '../support/deploy-tools.js';

const CI = fileURLToPath(new URL('../../deploy/ci/', import.meta.url));
const tools = findDeployTools();

type Job = { steps?: Array<{ run?: string; uses?: string; env?: Record<string, string> }>; script?: string[]; env?: Record<string, string>; variables?: Record<string, string>; permissions?: Record<string, string>; id_tokens?: Record<string, { aud: string }> };

describe.skipIf(!tools)('deploy/ci/github-actions', () => {
  it('the workflow passes actionlint', async () => {
    const text = await readFile(`${CI}github-actions/encrypt-image.yml`, 'utf8');
    const lint = await lintWorkflow(tools!, text, 'encrypt-image.yml');
    expect(lint.ok, lint.summary).toBe(true);
  });
});

describe('deploy/ci examples: the promised shape', () => {
  it('GitHub Actions: builds to an archive, encrypts with Vault through the job OIDC token, credentials in a file', async () => {
    const wf = parse(await readFile(`${CI}github-actions/encrypt-image.yml`, 'utf8')) as { jobs: Record<string, Job> };
    const scripts = (job: Job): string => (job.steps ?? []).map((s) => s.run ?? '').join('\n');
    expect(scripts(wf.jobs.build!)).toMatch(/--output type=oci,dest=image\.oci\.tar/);
    expect(scripts(wf.jobs.build!)).not.toMatch(/--push|docker push/);
    const enc = wf.jobs['encrypt-and-push']!;
    expect(enc.permissions?.['id-token']).toBe('write');
    expect(enc.env).toMatchObject({ IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_AUTH_MOUNT: 'jwt-github' });
    expect(scripts(enc)).toMatch(/imagegate encrypt oci-archive:image\.oci\.tar "docker:\/\/\$image" --recipient "vault:\$TRANSIT_KEY"/);
    expect(scripts(enc)).not.toMatch(/--(dest-)?creds/);
  });

  it('GitLab: the same, with an id_token for Vault and protected refs only', async () => {
    const ci = parse(await readFile(`${CI}gitlab/.gitlab-ci.yml`, 'utf8')) as Record<string, Job & { rules?: Array<{ if: string }> }>;
    expect(ci['build-image']!.script!.join('\n')).toMatch(/oci-archive:image\.oci\.tar/);
    const enc = ci['encrypt-and-push']!;
    expect(enc.id_tokens?.VAULT_ID_TOKEN?.aud).toBeTruthy();
    expect(enc.variables).toMatchObject({ IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_AUTH_MOUNT: 'jwt-gitlab' });
    expect(enc.rules?.[0]?.if).toMatch(/CI_COMMIT_REF_PROTECTED == "true"/);
    const script = enc.script!.join('\n');
    expect(script).toMatch(/imagegate encrypt oci-archive:image\.oci\.tar "docker:\/\/\$CI_REGISTRY_IMAGE:\$CI_COMMIT_SHA" --recipient "vault:\$TRANSIT_KEY"/);
    expect(script).not.toMatch(/--(dest-)?creds/);
  });
});
