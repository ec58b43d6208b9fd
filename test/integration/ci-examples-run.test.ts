/**
 * The CI examples' encrypt jobs, run as written: the `run:` steps of deploy/ci/github-actions/encrypt-image.yml and
 * the `script:` of deploy/ci/gitlab/.gitlab-ci.yml execute in bash with what the CI system would provide (the job's
 * OIDC token, its registry credentials, its variables), against OpenBao set up by `imagegate vault setup` from
 * deploy/vault/setup.example.yaml and a TLS registry with htpasswd. Only what cannot be real here is replaced, in
 * plain sight: the token issuers are local keys, Vault and registry addresses are local, the CI image's `imagegate`
 * is this checkout's CLI, and the registry's CA is trusted through NODE_EXTRA_CA_CERTS.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { gitlabCiToken, githubActionsToken } from '../support/ci-identities.js';
import { buildOciLayout, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegateOk, layerContentDigests } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { CLUSTER_ISSUER, clusterIssuer } from '../support/service-accounts.js';
import { requireTool, run, skopeo, tempDir, testTempDir } from '../support/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ready = Boolean(findOpenBao() && requireTool('skopeo') && requireTool('htpasswd') && requireTool('openssl'));
const SHA = 'c0ffee'.padEnd(40, '0');
const GITLAB = 'https://gitlab.example';

let bao: OpenBaoServer;
let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let archive: string;
let bin: string;
let github: KeyObject;
let gitlab: KeyObject;
let tokenEndpoint: http.Server;
let tokenUrl: string;
const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const RUNTIME_BEARER = 'runtime-bearer-for-this-job';

const publicPem = (key: KeyObject): string => createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();

/** Runs `script` as a CI step would: bash with errexit and pipefail, in the job's directory, with `env`. */
function step(script: string, env: Record<string, string>, cwd: string): ReturnType<typeof run> {
  return run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { cwd, env: { PATH: `${bin}:${process.env.PATH}`, NODE_EXTRA_CA_CERTS: reg.caFile!, ...env } });
}

/** A job's `${{ … }}` expressions, replaced from `values`; an expression the test does not know fails it. */
function expand(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expr: string) => {
    expect(values, `the test knows the expression ${expr}`).toHaveProperty([expr]);
    return values[expr]!;
  });
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-ci-run-');
  cleanup = dir.cleanup;
  work = dir.path;
  [bao, reg] = [(await startOpenBao())!, (await startRegistry({ tls: true, htpasswd: true }))!];
  github = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  gitlab = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const cluster = clusterIssuer();

  // The shipped setup example, with its issuers' keys swapped for local ones (Vault here cannot reach GitHub,
  // GitLab or a cluster's discovery document) and nothing else changed.
  const doc = parse(await readFile(path.join(REPO, 'deploy/vault/setup.example.yaml'), 'utf8')) as Record<string, any>;
  doc.ci.github = { ...doc.ci.github, issuer: GITHUB_ISSUER, jwtValidationPubkeys: [publicPem(github)] };
  doc.ci.gitlab = { ...doc.ci.gitlab, url: GITLAB, jwtValidationPubkeys: [publicPem(gitlab)] };
  doc.workloads = { ...doc.workloads, jwt: { ...doc.workloads.jwt, issuer: CLUSTER_ISSUER, jwtValidationPubkeys: [cluster.publicPem] } };
  delete doc.workloads.kubernetes;
  const setupFile = path.join(work, 'setup.yaml');
  await writeFile(setupFile, stringify(doc));
  await imagegateOk(['vault', 'setup', '--file', setupFile], { env: { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken } });

  // GitHub's runtime token endpoint: hands the job an OIDC token for the audience it asks for.
  tokenEndpoint = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.headers.authorization?.toLowerCase() !== `bearer ${RUNTIME_BEARER}`) return void res.writeHead(401).end();
    const value = githubActionsToken(github, GITHUB_ISSUER, url.searchParams.get('audience') ?? '', { repository: 'acme/shop', ref: 'refs/heads/main' });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value }));
  });
  await new Promise<void>((r) => tokenEndpoint.listen(0, '127.0.0.1', r));
  tokenUrl = `http://127.0.0.1:${(tokenEndpoint.address() as AddressInfo).port}/token?api-version=2.0`;

  // What the build job leaves behind: an OCI archive of the application image.
  src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [{ files: [{ path: 'app/run', content: '#!/bin/sh\necho shop\n' }] }, { files: [{ path: 'etc/app.conf', content: 'x=1\n' }] }] }] });
  archive = path.join(work, 'image.oci.tar');
  const res = await skopeo(['copy', `oci:${src.dir}:v1`, `oci-archive:${archive}`]);
  expect(res.code, res.stderr).toBe(0);
  bin = path.join(work, 'bin');
  await run('mkdir', ['-p', bin]);
  await writeFile(path.join(bin, 'imagegate'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
}, 180_000);

afterAll(async () => {
  await new Promise((r) => (tokenEndpoint ? tokenEndpoint.close(r) : r(undefined)));
  await bao?.stop();
  await reg?.stop();
  await cleanup?.();
});

/** The pushed image decrypts (as an operator) to the application's layers, and is wrapped with `key`. */
async function expectEncryptedWith(image: string, key: string, stdout: string): Promise<void> {
  expect(stdout).toMatch(new RegExp(`vault-transit transit/keys/${key} v1 bound to ${reg.host.replace(/\./g, '\\.')}/`));
  const out = await testTempDir('ci-run-dec-');
  await imagegateOk(['decrypt', `docker://${image}`, `oci:${out}:v1`, '--vault', '--ca-cert', reg.caFile!, '--creds', `${reg.username}:${reg.password}`], {
    env: { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken },
  });
  expect(await layerContentDigests(out, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));
}

describe.skipIf(!ready)('deploy/ci examples, run against OpenBao (vault setup) and a TLS registry', () => {
  it('GitHub Actions: the encrypt-and-push job logs in with the job OIDC token and pushes the encrypted image', async () => {
    const wf = parse(await readFile(path.join(REPO, 'deploy/ci/github-actions/encrypt-image.yml'), 'utf8')) as { jobs: Record<string, any> };
    const job = wf.jobs['encrypt-and-push'];
    const jobDir = await testTempDir('gha-job-');
    await run('cp', [archive, path.join(jobDir, 'image.oci.tar')]);
    const runnerTemp = await testTempDir('gha-temp-');
    const env: Record<string, string> = {
      ...job.env,
      REGISTRY: reg.host,
      VAULT_ADDR: bao.address,
      GITHUB_REPOSITORY: 'Acme/Shop',
      GITHUB_SHA: SHA,
      RUNNER_TEMP: runnerTemp,
      ACTIONS_ID_TOKEN_REQUEST_URL: tokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: RUNTIME_BEARER,
    };
    const values = { 'github.actor': reg.username!, 'secrets.GITHUB_TOKEN': reg.password! };
    let out = '';
    for (const s of job.steps as Array<{ name?: string; run?: string; uses?: string; env?: Record<string, string> }>) {
      if (s.run === undefined) continue; // actions/download-artifact: the archive is already in the job directory
      const stepEnv = Object.fromEntries(Object.entries(s.env ?? {}).map(([k, v]) => [k, expand(String(v), values)]));
      const res = await step(expand(s.run, values), { ...env, ...stepEnv }, jobDir);
      expect(res.code, `step "${s.name}":\n${res.stdout}\n${res.stderr}`).toBe(0);
      out += res.stdout;
    }
    // The repository name was lower-cased for the registry, and the credentials file is gone.
    await expectEncryptedWith(`${reg.host}/acme/shop:${SHA}`, 'shop-layers', out);
    await expect(access(path.join(runnerTemp, 'auth.json'))).rejects.toThrow();
  });

  it('GitLab: the encrypt-and-push job logs in with its id_token on a protected ref and pushes the encrypted image', async () => {
    const ci = parse(await readFile(path.join(REPO, 'deploy/ci/gitlab/.gitlab-ci.yml'), 'utf8')) as Record<string, any>;
    const job = ci['encrypt-and-push'];
    const jobDir = await testTempDir('gitlab-job-');
    await run('cp', [archive, path.join(jobDir, 'image.oci.tar')]);
    const buildsDir = await testTempDir('gitlab-builds-');
    const image = `${reg.host}/acme/billing/api`;
    const env: Record<string, string> = {
      ...ci.variables,
      ...job.variables,
      VAULT_ADDR: bao.address,
      VAULT_ID_TOKEN: gitlabCiToken(gitlab, GITLAB, job.id_tokens.VAULT_ID_TOKEN.aud, { project_path: 'acme/billing/api', ref_protected: 'true' }),
      CI_REGISTRY: reg.host,
      CI_REGISTRY_USER: reg.username!,
      CI_REGISTRY_PASSWORD: reg.password!,
      CI_REGISTRY_IMAGE: image,
      CI_COMMIT_SHA: SHA,
      CI_COMMIT_REF_PROTECTED: 'true',
      CI_BUILDS_DIR: buildsDir,
    };
    const res = await step((job.script as string[]).join('\n'), env, jobDir);
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    const after = await step((job.after_script as string[]).join('\n'), env, jobDir);
    expect(after.code).toBe(0);
    await expectEncryptedWith(`${image}:${SHA}`, 'billing-layers', res.stdout);
    await expect(access(path.join(buildsDir, 'imagegate-auth.json'))).rejects.toThrow();

    // The same job on an unprotected ref is refused by Vault before anything is pushed.
    const unprotected = await step((job.script as string[]).join('\n'), {
      ...env,
      CI_COMMIT_SHA: 'f'.repeat(40),
      VAULT_ID_TOKEN: gitlabCiToken(gitlab, GITLAB, job.id_tokens.VAULT_ID_TOKEN.aud, { project_path: 'acme/billing/api', ref_protected: 'false' }),
    }, jobDir);
    expect(unprotected.code).toBe(7);
    expect(unprotected.stderr).toMatch(/jwt-gitlab/);
    const tag = await run(requireTool('skopeo')!, ['inspect', '--cert-dir', reg.certDir!, '--creds', `${reg.username}:${reg.password}`, `docker://${image}:${'f'.repeat(40)}`]);
    expect(tag.stderr).toMatch(/manifest unknown/);
  });
});
