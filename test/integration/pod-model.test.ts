/**
 * The pod model end to end, with no runtime changes: an application image encrypted above its plaintext base
 * (`--plain-base`, `--paths`), the webhook's mutation (base image by digest, volumes at the declared paths, the
 * image config copied, `imagegate init --unpack` injected), the init container run as the kubelet would run it
 * with the pod's own Vault identity (real OpenBao, real docker-registry), and the original entrypoint started from
 * the unpacked files in a process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleImage } from '../../src/demo/sample-image.js';
import { CLI, imagegate, imagegateOk } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { makeTlsFiles, startRegistry, type RegistryServer } from '../support/registry-server.js';
import { CLUSTER_ISSUER, clusterIssuer, serviceAccountToken, type ClusterIssuer } from '../support/service-accounts.js';
import { requireTool, run, skopeo, tempDir } from '../support/tools.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry') && requireTool('skopeo') && requireTool('openssl'));
const CHECK_IMAGE = `registry.example/imagegate@sha256:${'e'.repeat(64)}`;

let bao: OpenBaoServer;
let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let issuer: ClusterIssuer;
let webhook: ChildProcess;
let url: string;
let agent: Agent;
let baseDigest: string;
let sample: string;

/** An OCI layout holding only the first layer of the sample image, with a config to match: its plaintext base. */
async function baseLayoutOf(sampleDir: string, dir: string): Promise<void> {
  const index = JSON.parse(await readFile(path.join(sampleDir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string): Promise<Buffer> => readFile(path.join(sampleDir, 'blobs', 'sha256', d.slice('sha256:'.length)));
  const manifest = JSON.parse((await blob(index.manifests[0]!.digest)).toString()) as { config: { digest: string }; layers: Array<{ digest: string; size: number; mediaType: string }> };
  const config = JSON.parse((await blob(manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] }; history?: unknown[] };
  const baseConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: config.rootfs.diff_ids.slice(0, 1) } }));
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const layer = manifest.layers[0]!;
  await put(await blob(layer.digest));
  const cfg = await put(baseConfig);
  const m = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [layer] })));
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-pod-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  await bao.api('POST', 'transit/keys/prod', { derived: true });
  await bao.api('PUT', 'sys/policies/acl/unwrap-prod', { policy: 'path "transit/decrypt/prod" { capabilities = ["update"] }' });
  issuer = clusterIssuer();
  await bao.api('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [issuer.publicPem], bound_issuer: CLUSTER_ISSUER });
  await bao.api('POST', 'auth/jwt/role/workloads', { role_type: 'jwt', user_claim: 'sub', bound_audiences: ['vault'], bound_subject: 'system:serviceaccount:shop:web', token_policies: ['unwrap-prod'], token_ttl: '5m' });

  // The sample image: layer 0 is the base (etc/), layer 1 the application (app/run.sh, app/data/secret.txt).
  sample = path.join(work, 'sample');
  await writeSampleImage(sample, 'v1');
  const baseDir = path.join(work, 'base');
  await baseLayoutOf(sample, baseDir);
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${baseDir}:v1`, `docker://${reg.host}/public/base:1`]);
  baseDigest = (await skopeo(['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${reg.host}/public/base:1`])).stdout.trim();

  const policyFile = path.join(work, 'policy.yaml');
  await writeFile(
    policyFile,
    `apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nruntimeModel: pod\nrepositories:\n  - match: "${reg.host}/prod/**"\n    keys:\n      - key: transit/prod\n        serviceAccounts: ["shop/web"]\n`,
  );
  const tls = await makeTlsFiles(requireTool('openssl')!, path.join(work, 'tls'));
  agent = new Agent({ connect: { ca: await readFile(tls.caFile) } });
  webhook = spawn(
    process.execPath,
    [CLI, 'webhook', 'serve', '--policy', policyFile, '--cert', tls.serverCertFile, '--key', tls.serverKeyFile, '--listen', '127.0.0.1:0', '--insecure-registry', reg.host,
      '--check-image', CHECK_IMAGE, '--check-vault-addr', bao.address, '--check-vault-role', 'workloads'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    webhook.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('https://'));
      if (line !== undefined) resolve(line.trim());
    });
    webhook.on('exit', (code) => reject(new Error(`webhook exited with ${code}`)));
  });
}, 180_000);

afterAll(async () => {
  webhook?.kill('SIGKILL');
  await agent?.destroy();
  await bao?.stop();
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('pod model, end to end', () => {
  const root = (): Record<string, string> => ({ VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken });

  it('refuses to encrypt layers that write outside the declared paths', async () => {
    const res = await imagegate(['encrypt', `oci:${sample}:v1`, `docker://${reg.host}/prod/wrong:1`, '-r', 'vault:prod', '--plain-base', `docker://${reg.host}/public/base:1`, '--paths', 'data', '--insecure'], { env: root() });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/writes "app.*", outside the declared paths \(data\)/);
  });

  it('encrypts above the base, the webhook swaps in the base, init unpacks as the pod, and the entrypoint runs', async () => {
    const app = `${reg.host}/prod/app`;
    const enc = await imagegateOk(['encrypt', `oci:${sample}:v1`, `docker://${app}:1`, '-r', 'vault:prod', '--plain-base', `docker://${reg.host}/public/base:1`, '--paths', 'app', '--insecure', '-q'], { env: root() });
    const appDigest = enc.stdout.trim();
    const report = JSON.parse((await imagegateOk(['inspect', '--json', `docker://${app}:1`, '--insecure'])).stdout) as { images: Array<{ layers: Array<{ encrypted: boolean }> }> };
    expect(report.images[0]!.layers.map((l) => l.encrypted)).toEqual([false, true]);

    const spec = { serviceAccountName: 'web', containers: [{ name: 'shop', image: `${app}:1` }] };
    const body = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'pod-1', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE', object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'shop' }, spec } },
    };
    const res = await request(`${url}/mutate`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = (JSON.parse(await res.body.text()) as { response: { allowed: boolean; patch?: string; status?: { message: string } } }).response;
    expect(answer.allowed, answer.status?.message).toBe(true);
    const patch = JSON.parse(Buffer.from(answer.patch!, 'base64').toString()) as Array<{ path: string; value: any }>;
    const value = (p: string): any => patch.find((x) => x.path === p)?.value;
    expect(value('/spec/containers/0/image')).toBe(`${reg.host}/public/base@${baseDigest}`);
    expect(value('/spec/containers/0/volumeMounts')).toEqual([{ name: 'imagegate-0-0', mountPath: '/app' }]);
    expect(value('/spec/containers/0/command')).toEqual(['/bin/sh', '/app/run.sh']);
    const init = value('/spec/initContainers')[0] as { name: string; image: string; args: string[]; env: Array<{ name: string; value: string }>; volumeMounts: Array<{ name: string; mountPath: string }> };
    expect(init.image).toBe(CHECK_IMAGE);
    expect(init.args).toEqual(['init', '--unpack', '/imagegate/unpack', '--paths', 'app', `docker://${app}@${appDigest}`]);
    expect(init.volumeMounts).toContainEqual({ name: 'imagegate-0-0', mountPath: '/imagegate/unpack/app' });

    // Run the pod as a kubelet would: volumes are directories, the token is the pod's projected one.
    const pod = path.join(work, 'pod');
    const unpackRoot = path.join(pod, 'unpack');
    await mkdir(path.join(unpackRoot, 'app'), { recursive: true });
    const tokenFile = path.join(pod, 'token');
    await writeFile(tokenFile, serviceAccountToken(issuer, 'shop', 'web'));
    const env = Object.fromEntries(init.env.map((e) => [e.name, e.value]));
    const args = init.args.map((a) => (a === '/imagegate/unpack' ? unpackRoot : a));
    await imagegateOk([...args, '--insecure', '--platform', 'linux/amd64'], { env: { ...env, IMAGEGATE_VAULT_JWT_FILE: tokenFile } });
    expect((await readdir(path.join(unpackRoot, 'app'))).sort()).toEqual(['data', 'run.sh']);

    // The app container: the base image's root with the volume at /app; its entrypoint runs the unpacked script.
    const [shell, script] = value('/spec/containers/0/command') as [string, string];
    const started = await run(shell, [path.join(unpackRoot, script.slice(1))]);
    expect(started.code).toBe(0);
    expect(started.stdout).toContain('the secret sauce lives here');
  });

  it('a pod whose identity may not unwrap the key gets nothing unpacked', async () => {
    const pod = path.join(work, 'intruder');
    const unpackRoot = path.join(pod, 'unpack');
    await mkdir(path.join(unpackRoot, 'app'), { recursive: true });
    const tokenFile = path.join(pod, 'token');
    await writeFile(tokenFile, serviceAccountToken(issuer, 'shop', 'intruder'));
    const res = await imagegate(['init', '--unpack', unpackRoot, '--paths', 'app', `docker://${reg.host}/prod/app:1`, '--insecure', '--platform', 'linux/amd64'], {
      env: { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_ROLE: 'workloads', IMAGEGATE_VAULT_JWT_FILE: tokenFile },
    });
    expect(res.code).toBe(7);
    expect(await readdir(path.join(unpackRoot, 'app'))).toEqual([]);
  });
});
