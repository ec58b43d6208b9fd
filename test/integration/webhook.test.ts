/**
 * The admission webhook as the API server meets it: `imagegate webhook serve` over TLS, AdmissionReviews shaped
 * like the API server's (pods with init and ephemeral containers, tags and digests, dry-run, UPDATE, workloads),
 * images in a real docker-registry encrypted with a real OpenBao Transit key; JSON patches applied and the result
 * sent back through the validating hook, as the API server would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_COMMAND } from '../../src/pod-model/injected-containers.js';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { CLI, imagegateOk } from '../support/imagegate.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { makeTlsFiles, startRegistry, type RegistryServer } from '../support/registry-server.js';
import { requireTool, skopeo, tempDir } from '../support/tools.js';
// The pod as a real API server sends it to the validating hook (keys reordered, defaults, the token mount).
import { applyJsonPatch, storedByApiServer, throughApiServer } from '../support/api-server-pod.js';

const ready = Boolean(findOpenBao() && requireTool('docker-registry') && requireTool('skopeo') && requireTool('openssl'));

let bao: OpenBaoServer;
let reg: RegistryServer;
/** A private registry (TLS + htpasswd) the webhook has no credentials for: only the pod's pull secret opens it. */
let privateReg: RegistryServer;
let kubeApi: https.Server;
const secretReads: string[] = [];
let blackHole: net.Server;
const holes: net.Socket[] = [];
let tls: Awaited<ReturnType<typeof makeTlsFiles>>;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let webhook: ChildProcess;
let url: string;
let agent: Agent;
let logs = '';
const digests: Record<string, string> = {};
const CHECK_IMAGE = 'registry.example/imagegate@sha256:' + 'c'.repeat(64);

interface Review {
  response: { uid: string; allowed: boolean; status?: { code: number; message: string }; warnings?: string[]; patchType?: string; patch?: string };
}

async function post(hook: 'mutate' | 'validate', body: string | object, contentType = 'application/json'): Promise<{ status: number; text: string }> {
  const res = await request(`${url}/${hook}`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

async function review(hook: 'mutate' | 'validate', body: object): Promise<Review['response']> {
  const res = await post(hook, body);
  expect(res.status, res.text).toBe(200);
  const parsed = JSON.parse(res.text) as Review & { apiVersion: string; kind: string };
  expect(parsed.apiVersion).toBe('admission.k8s.io/v1');
  expect(parsed.kind).toBe('AdmissionReview');
  return parsed.response;
}

let uidCounter = 0;
/** An AdmissionReview as the API server sends one for a Pod (fields it always sets included). */
function podReview(spec: Record<string, unknown>, opts: { namespace?: string; operation?: string; dryRun?: boolean; kind?: string; subResource?: string; object?: object; oldSpec?: Record<string, unknown> } = {}): object {
  const namespace = opts.namespace ?? 'shop';
  const kind = opts.kind ?? 'Pod';
  const group = kind === 'Pod' ? '' : kind === 'Job' || kind === 'CronJob' ? 'batch' : 'apps';
  const object = opts.object ?? { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-7d9f', namespace, uid: 'pod-uid' }, spec };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${++uidCounter}`,
      kind: { group, version: 'v1', kind },
      resource: { group, version: 'v1', resource: `${kind.toLowerCase()}s` },
      ...(opts.subResource !== undefined ? { subResource: opts.subResource } : {}),
      requestKind: { group, version: 'v1', kind },
      requestResource: { group, version: 'v1', resource: `${kind.toLowerCase()}s` },
      name: 'web-7d9f',
      namespace,
      operation: opts.operation ?? 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: 'u', groups: ['system:serviceaccounts'] },
      object,
      // An UPDATE carries the object as it was: by default the same, or the spec before the change (oldSpec).
      oldObject: opts.operation === 'UPDATE' ? (opts.oldSpec !== undefined ? { ...object, spec: opts.oldSpec } : object) : null,
      dryRun: opts.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/** The webhook's patch applied as the API server would (RFC 6902 add/replace/remove). */
function applyPatch(doc: Record<string, unknown>, patch: Array<{ op: string; path: string; value?: unknown }>): Record<string, unknown> {
  return applyJsonPatch(doc, patch);
}

function patchOf(r: Review['response']): Array<{ op: string; path: string; value?: unknown }> {
  expect(r.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(r.patch!, 'base64').toString()) as Array<{ op: string; path: string; value?: unknown }>;
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-webhook-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  reg = (await startRegistry())!;
  await bao.api('POST', 'transit/keys/prod-layers', { derived: true });
  await bao.api('POST', 'transit/keys/other-layers', { derived: true });
  const vaultEnv = { VAULT_ADDR: bao.address, VAULT_TOKEN: bao.rootToken };

  const plain = await buildOciLayout(path.join(work, 'plain'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(71, 1, 50 * 1024) }, { files: randomLayerFiles(72, 1, 20 * 1024) }] }] });
  const multi = await buildOciLayout(path.join(work, 'multi'), {
    tag: 'v1',
    images: [
      { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ files: randomLayerFiles(73, 1, 10 * 1024) }] },
      { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ files: randomLayerFiles(74, 1, 10 * 1024) }] },
    ],
  });
  const push = async (src: string, repoTag: string, args: string[]): Promise<void> => {
    const out = await imagegateOk(['encrypt', src, `docker://${reg.host}/${repoTag}`, ...args, '--insecure', '-q'], { env: vaultEnv });
    digests[repoTag] = out.stdout.trim();
  };
  await push(`oci:${plain.dir}:v1`, 'prod/app:1', ['-r', 'vault:prod-layers']);
  await push(`oci:${plain.dir}:v1`, 'prod/other-key:1', ['-r', 'vault:other-layers']);
  await push(`oci:${multi.dir}:v1`, 'prod/half:1', ['-r', 'vault:prod-layers', '--platform', 'linux/amd64']);
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${plain.dir}:v1`, `docker://${reg.host}/prod/plain:1`]);
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${plain.dir}:v1`, `docker://${reg.host}/public/tools:1`]);

  privateReg = (await startRegistry({ tls: true, htpasswd: true }))!;
  await imagegateOk(['encrypt', `oci:${plain.dir}:v1`, `docker://${privateReg.host}/prod/secret:1`, '-r', 'vault:prod-layers', '--creds', `${privateReg.username}:${privateReg.password}`, '--ca-cert', privateReg.caFile!, '-q'], { env: vaultEnv });

  // A stand-in for the Kubernetes API, serving the namespace's pull secrets (and refusing one, as RBAC would).
  tls = await makeTlsFiles(requireTool('openssl')!, path.join(work, 'tls'));
  const tokenFile = path.join(work, 'sa.token');
  await writeFile(tokenFile, 'webhook-sa-token');
  const dockerconfig = Buffer.from(JSON.stringify({ auths: { [privateReg.host]: { auth: Buffer.from(`${privateReg.username}:${privateReg.password}`).toString('base64') } } })).toString('base64');
  kubeApi = https.createServer({ cert: await readFile(tls.serverCertFile), key: await readFile(tls.serverKeyFile) }, (req, res) => {
    secretReads.push(`${req.headers.authorization} ${req.url}`);
    if (req.url === '/api/v1/namespaces/shop/secrets/regcred') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerconfig } }));
    } else {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"kind":"Status","reason":"Forbidden"}');
    }
  });
  await new Promise<void>((r) => kubeApi.listen(0, '127.0.0.1', r));
  // A registry host that accepts connections and never answers: the look-up budget must cut it off.
  blackHole = net.createServer((socket) => holes.push(socket));
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));

  const policyFile = path.join(work, 'policy.yaml');
  await writeFile(
    policyFile,
    `apiVersion: imagegate.dev/v1alpha1
kind: AdmissionPolicy
mode: enforce
runtimeModel: node
failurePolicy: closed
namespaces:
  exempt: [kube-system, imagegate]
repositories:
  - match: "${reg.host}/prod/**"
    keys:
      - key: transit/prod-layers
        minVersion: 1
        serviceAccounts: ["shop/web", "batch/*"]
`,
  );
  agent = new Agent({ connect: { ca: await readFile(tls.caFile) } });
  // The webhook reads certificates it can be told to re-read: copies, which the reload test replaces.
  await copyFile(tls.serverCertFile, path.join(work, 'webhook.crt'));
  await copyFile(tls.serverKeyFile, path.join(work, 'webhook.key'));
  webhook = spawn(
    process.execPath,
    [
      CLI, 'webhook', 'serve', '--policy', policyFile, '--cert', path.join(work, 'webhook.crt'), '--key', path.join(work, 'webhook.key'), '--listen', '127.0.0.1:0',
      '--insecure-registry', reg.host, '--ca-cert', privateReg.caFile!, '--check-image', CHECK_IMAGE, '--check-vault-addr', 'https://vault.example:8200', '--check-vault-role', 'workloads',
      '--kube-api', `https://127.0.0.1:${(kubeApi.address() as AddressInfo).port}`, '--kube-token-file', tokenFile, '--kube-ca-file', tls.caFile,
      '--budget-ms', '1500', '--cert-poll-ms', '200',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  webhook.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    webhook.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('https://'));
      if (line !== undefined) resolve(line.trim());
      logs += d.toString();
    });
    webhook.on('exit', (code) => reject(new Error(`webhook exited with ${code}: ${logs}`)));
  });
}, 180_000);

afterAll(async () => {
  webhook?.kill('SIGKILL');
  await agent?.destroy();
  await bao?.stop();
  await reg?.stop();
  await privateReg?.stop();
  kubeApi?.closeAllConnections();
  await new Promise((r) => (kubeApi ? kubeApi.close(r) : r(undefined)));
  for (const socket of holes) socket.destroy();
  await new Promise((r) => (blackHole ? blackHole.close(r) : r(undefined)));
  await cleanup?.();
});

describe.skipIf(!ready)('imagegate webhook serve', () => {
  const image = (repoTag: string): string => `${reg.host}/${repoTag}`;
  const pinned = (repoTag: string): string => `${reg.host}/${repoTag.split(':')[0]}@${digests[repoTag] ?? ''}`;

  it('pins every image by digest, injects the key-access check, and the validating hook accepts the result', async () => {
    const spec = {
      serviceAccountName: 'web',
      initContainers: [{ name: 'migrate', image: image('prod/app:1') }],
      containers: [
        { name: 'web', image: image('prod/app:1') },
        { name: 'sidecar', image: image('public/tools:1') },
      ],
    };
    const res = await review('mutate', podReview(spec));
    expect(res.allowed, res.status?.message).toBe(true);
    const patched = applyPatch({ spec }, patchOf(res)).spec as { initContainers: Array<{ name: string; image: string; args: string[] }>; containers: Array<{ image: string }>; volumes: Array<{ name: string }> };
    expect(patched.containers.map((c) => c.image)).toEqual([pinned('prod/app:1'), `${reg.host}/public/tools@${(await resolveDigest('public/tools:1'))}`]);
    expect(patched.initContainers.map((c) => c.name)).toEqual(['imagegate-check', 'migrate']);
    expect(patched.initContainers[1]!.image).toBe(pinned('prod/app:1'));
    expect(patched.initContainers[0]!.image).toBe(CHECK_IMAGE);
    expect(patched.initContainers[0]!.args).toEqual(['init', '--check', `docker://${reg.host}/prod/app@${digests['prod/app:1']}`]);
    expect(patched.volumes.map((v) => v.name)).toEqual(['imagegate-token']);

    const validated = await review('validate', podReview(patched));
    expect(validated.allowed, validated.status?.message).toBe(true);

    // Someone removes or edits the check (another mutating webhook, a later UPDATE): refused.
    const removed = { ...patched, initContainers: patched.initContainers.slice(1) };
    const denied = await review('validate', podReview(removed));
    expect(denied.allowed).toBe(false);
    expect(denied.status!.message).toMatch(/imagegate-check init container is missing/);
    const altered = structuredClone(patched);
    altered.initContainers[0]!.args = ['init', '--version'];
    expect((await review('validate', podReview(altered))).status!.message).toMatch(/altered \(args\)/);
  });

  it('admits its check as a real API server returns the pod: keys reordered, defaults filled in, the token mount', async () => {
    const metadata = { name: 'web-7d9f', namespace: 'shop' };
    const spec = { serviceAccountName: 'web', containers: [{ name: 'web', image: image('prod/app:1') }] };
    // Created as a real API server does it: its plugins and defaults, this webhook, and this webhook re-invoked (which
    // must leave its check alone). Keys in Go's order, defaultMode 420, the kube-api-access mount in every container.
    const calls: number[] = [];
    const stored = await throughApiServer({ metadata, spec }, async (pod) => {
      const res = await review('mutate', podReview(pod.spec));
      expect(res.allowed, res.status?.message).toBe(true);
      const ops = res.patch === undefined ? [] : patchOf(res);
      calls.push(ops.length);
      return applyPatch(pod, ops);
    });
    expect(calls[1], 'the re-invoked hook changes nothing').toBe(0);
    expect(stored.spec.initContainers[0].volumeMounts.map((m: { name: string }) => m.name)).toEqual(['imagegate-token', 'kube-api-access-x7k2q']);
    const admitted = await review('validate', podReview({}, { object: stored }));
    expect(admitted.allowed, admitted.status?.message).toBe(true);
  });

  it('refuses its check with the command overridden (node -e process.exit(0)), and replaces a check the pod brings', async () => {
    const metadata = { name: 'web-7d9f', namespace: 'shop' };
    const spec = { serviceAccountName: 'web', containers: [{ name: 'web', image: image('prod/app:1') }] };
    const patched = applyPatch({ metadata, spec }, patchOf(await review('mutate', podReview(spec)))) as { spec: { initContainers: Array<Record<string, unknown>> } };
    for (const pod of [patched, storedByApiServer(patched)]) {
      const overridden = structuredClone(pod);
      overridden.spec.initContainers[0]!.command = ['node', '-e', 'process.exit(0)'];
      const refused = await review('validate', podReview({}, { object: overridden }));
      expect(refused.allowed).toBe(false);
      expect(refused.status!.message).toMatch(/imagegate-check init container was altered \(command\)/);
    }

    // A pod that brings its own imagegate-check with that command gets the injected one instead.
    const own = { ...spec, initContainers: [{ name: 'imagegate-check', image: CHECK_IMAGE, command: ['node', '-e', 'process.exit(0)'] }] };
    const replaced = applyPatch({ metadata, spec: own }, patchOf(await review('mutate', podReview(own)))) as { spec: { initContainers: Array<{ name: string; command: string[] }> } };
    expect(replaced.spec.initContainers.map((c) => [c.name, c.command])).toEqual([['imagegate-check', CHECK_COMMAND]]);
    const ownAdmitted = await review('validate', podReview({}, { object: storedByApiServer(replaced) }));
    expect(ownAdmitted.allowed, ownAdmitted.status?.message).toBe(true);
  });

  it('puts its check first again when a later webhook put an init container before it, and names that container otherwise', async () => {
    const metadata = { name: 'web-7d9f', namespace: 'shop' };
    const spec = { serviceAccountName: 'web', containers: [{ name: 'web', image: image('prod/app:1') }] };
    const patched = applyPatch({ metadata, spec }, patchOf(await review('mutate', podReview(spec))));
    const meshed = applyPatch(patched, [{ op: 'add', path: '/spec/initContainers/0', value: { name: 'mesh-init', image: image('public/tools:1') } }]) as { spec: Record<string, unknown> };
    const named = await review('validate', podReview({}, { object: storedByApiServer(meshed) }));
    expect(named.allowed).toBe(false);
    expect(named.status!.message).toMatch(/not first: init container mesh-init \(image .*public\/tools:1\) was placed before it/);

    const reinvoked = applyPatch(meshed, patchOf(await review('mutate', podReview(meshed.spec)))) as { spec: { initContainers: Array<{ name: string }> } };
    expect(reinvoked.spec.initContainers.map((c) => c.name)).toEqual(['imagegate-check', 'mesh-init']);
    const admitted = await review('validate', podReview({}, { object: storedByApiServer(reinvoked) }));
    expect(admitted.allowed, admitted.status?.message).toBe(true);
  });

  it('denies a plaintext image in a protected repository, naming container, image, rule and remedy', async () => {
    const res = await review('mutate', podReview({ serviceAccountName: 'web', containers: [{ name: 'api', image: image('prod/plain:1') }] }));
    expect(res.allowed).toBe(false);
    expect(res.status!.code).toBe(403);
    expect(res.status!.message).toMatch(/container api \(.*prod\/plain:1\)/);
    expect(res.status!.message).toMatch(/encryption-required/);
    expect(res.status!.message).toMatch(/imagegate encrypt/);
  });

  it('denies an image wrapped by a key the policy does not allow, and a service account it does not allow', async () => {
    const wrongKey = await review('validate', podReview({ serviceAccountName: 'web', containers: [{ name: 'c', image: image('prod/other-key:1') }] }));
    expect(wrongKey.allowed).toBe(false);
    expect(wrongKey.status!.message).toMatch(/key-not-allowed/);
    expect(wrongKey.status!.message).toMatch(/transit\/keys\/other-layers/);
    const wrongSa = await review('validate', podReview({ serviceAccountName: 'intruder', containers: [{ name: 'c', image: image('prod/app:1') }] }));
    expect(wrongSa.allowed).toBe(false);
    expect(wrongSa.status!.message).toMatch(/service-account-not-allowed/);
    expect(wrongSa.status!.message).toMatch(/shop\/intruder/);
  });

  it('checks every platform of a multi-platform image: one plaintext platform denies', async () => {
    const res = await review('validate', podReview({ serviceAccountName: 'web', containers: [{ name: 'c', image: image('prod/half:1') }] }));
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toMatch(/linux\/arm64/);
  });

  it('checks ephemeral containers (pods/ephemeralcontainers) and images given by digest', async () => {
    const spec = {
      serviceAccountName: 'web',
      containers: [{ name: 'web', image: pinned('prod/app:1') }],
      ephemeralContainers: [{ name: 'debugger', image: image('prod/plain:1') }],
    };
    // `kubectl debug` adds the ephemeral container to a running pod: the old object has none.
    const before = { serviceAccountName: 'web', containers: spec.containers };
    const res = await review('validate', podReview(spec, { subResource: 'ephemeralcontainers', operation: 'UPDATE', oldSpec: before }));
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toMatch(/container debugger/);
    const ok = await review('mutate', podReview({ ...spec, ephemeralContainers: [{ name: 'debugger', image: image('public/tools:1') }] }, { subResource: 'ephemeralcontainers', operation: 'UPDATE', oldSpec: before }));
    expect(ok.allowed, ok.status?.message).toBe(true);
    // The digest-pinned container is left exactly as written.
    expect(patchOf(ok).some((p) => p.path === '/spec/containers/0/image')).toBe(false);
  });

  it('an UPDATE that changes no image (a label on a pod admitted before the policy) is let through; a swapped image is judged', async () => {
    const plain = { serviceAccountName: 'web', containers: [{ name: 'web', image: image('prod/plain:1') }] };
    expect((await review('validate', podReview(plain))).allowed, 'the same pod, created now, is refused').toBe(false);
    const relabel = await review('validate', podReview(plain, { operation: 'UPDATE' }));
    expect(relabel.allowed, relabel.status?.message).toBe(true);
    const swap = await review('validate', podReview(plain, { operation: 'UPDATE', oldSpec: { ...plain, containers: [{ name: 'web', image: pinned('prod/app:1') }] } }));
    expect(swap.allowed).toBe(false);
  });

  it('gives early feedback on Deployments, Jobs and CronJobs without mutating them', async () => {
    const template = { spec: { serviceAccountName: 'web', containers: [{ name: 'c', image: image('prod/plain:1') }] } };
    for (const [kind, object] of [
      ['Deployment', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { template } }],
      ['Job', { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template } }],
      ['CronJob', { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'cj' }, spec: { jobTemplate: { spec: { template } } } }],
    ] as const) {
      const res = await review('mutate', podReview({}, { kind, object }));
      expect(res.allowed, kind).toBe(false);
      expect(res.status!.message).toMatch(/encryption-required/);
    }
    const good = { spec: { serviceAccountName: 'web', containers: [{ name: 'c', image: image('prod/app:1') }] } };
    const res = await review('mutate', podReview({}, { kind: 'StatefulSet', object: { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { template: good } } }));
    expect(res.allowed).toBe(true);
    expect(res.patch).toBeUndefined();
  });

  it('answers dry-run requests the same way, and exempt namespaces are not checked', async () => {
    const spec = { containers: [{ name: 'c', image: image('prod/plain:1') }] };
    const dry = await review('validate', podReview(spec, { dryRun: true }));
    expect(dry.allowed).toBe(false);
    const exempt = await review('validate', podReview(spec, { namespace: 'kube-system' }));
    expect(exempt.allowed).toBe(true);
  });

  it('fails closed when an image cannot be resolved, naming it', async () => {
    const res = await review('validate', podReview({ serviceAccountName: 'web', containers: [{ name: 'c', image: image('prod/missing:1') }] }));
    expect(res.allowed).toBe(false);
    expect(res.status!.code).toBe(500);
    expect(res.status!.message).toMatch(/could not check the images, so it refuses \(every image must be checked in the node runtime model\).*prod\/missing:1/);
  });

  it('refuses malformed bodies, wrong content types and oversized bodies with the right HTTP status', async () => {
    expect((await post('validate', 'not json')).status).toBe(400);
    const wrongVersion = await post('validate', { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} });
    expect(wrongVersion.status).toBe(400);
    expect(wrongVersion.text).toMatch(/admissionReviewVersions/);
    const noUid = await post('validate', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { version: 'v1', kind: 'Pod' }, operation: 'CREATE' } });
    expect(noUid.status).toBe(400);
    expect(noUid.text).toMatch(/\$\.request\.uid/);
    expect((await post('validate', '{}', 'text/plain')).status).toBe(415);
    const huge = JSON.stringify(podReview({ containers: [{ name: 'c', image: image('public/tools:1') }], padding: 'x'.repeat(4 * 1024 * 1024) }));
    const big = await post('validate', huge).catch((e: unknown) => ({ status: 413, text: String(e) }));
    expect(big.status).toBe(413);
  });

  it('serves health, readiness and Prometheus metrics, and logs JSON lines with the request uid', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const res = await request(`${url}${p}`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    const metrics = await (await request(`${url}/metrics`, { dispatcher: agent })).body.text();
    expect(metrics).toMatch(/imagegate_admission_decisions_total\{hook="validate",result="denied",rule="encryption-required"\} \d+/);
    // prom-client writes a bucket's `le` before its other labels (their order means nothing to Prometheus).
    expect(metrics).toMatch(/imagegate_admission_duration_seconds_bucket\{le="0.1",hook="mutate"\} \d+/);
    expect(metrics).toMatch(/imagegate_image_cache_hits_total [1-9]/);
    const line = logs.split('\n').find((l) => l.includes('"result":"denied"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ msg: 'admission', uid: expect.stringMatching(/^uid-/), hook: expect.any(String) });
  });
});

describe.skipIf(!ready)('imagegate webhook serve: credentials, budget, certificates, shutdown', () => {
  it("reads the pod's imagePullSecrets for a private registry, and fails closed without them", async () => {
    const image = `${privateReg.host}/prod/secret:1`;
    const withSecret = await review('mutate', podReview({ serviceAccountName: 'web', imagePullSecrets: [{ name: 'forbidden' }, { name: 'regcred' }], containers: [{ name: 'c', image }] }));
    expect(withSecret.allowed, withSecret.status?.message).toBe(true);
    expect(patchOf(withSecret)[0]).toMatchObject({ op: 'replace', path: '/spec/containers/0/image', value: expect.stringMatching(/@sha256:/) });
    expect(secretReads).toContain('Bearer webhook-sa-token /api/v1/namespaces/shop/secrets/regcred');
    const without = await review('validate', podReview({ serviceAccountName: 'web', containers: [{ name: 'c', image }] }));
    expect(without.allowed).toBe(false);
    expect(without.status!.message).toMatch(/node runtime model\).*(UNAUTHORIZED|credentials)/);
  });

  it('answers within its look-up budget when a registry hangs', async () => {
    // The registry never answers: only the budget ends the look-up (without it the test runs into its timeout), and
    // the message says it was the budget. No bound on elapsed time, which a loaded machine could break.
    const res = await review('validate', podReview({ serviceAccountName: 'web', containers: [{ name: 'c', image: `127.0.0.1:${(blackHole.address() as AddressInfo).port}/prod/x:1` }] }));
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toMatch(/1500 ms budget/);
  });

  it('picks up a rotated certificate without a restart', async () => {
    const next = await makeTlsFiles(requireTool('openssl')!, path.join(work, 'tls-next'));
    await copyFile(next.serverKeyFile, path.join(work, 'webhook.key'));
    await copyFile(next.serverCertFile, path.join(work, 'webhook.crt'));
    const nextAgent = new Agent({ connect: { ca: await readFile(next.caFile) } });
    try {
      let served = false;
      for (let i = 0; i < 50 && !served; i++) {
        await new Promise((r) => setTimeout(r, 200));
        served = await request(`${url}/healthz`, { dispatcher: nextAgent }).then((r) => r.body.dump().then(() => r.statusCode === 200), () => false);
      }
      expect(served, 'the new certificate is served').toBe(true);
      expect(logs).toMatch(/reloaded TLS certificate/);
    } finally {
      await nextAgent.close();
    }
  });

  it('shuts down gracefully on SIGTERM', async () => {
    const exited = new Promise<number | null>((r) => webhook.on('exit', r));
    webhook.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs).toMatch(/shutting down; finishing requests in flight/);
  });
});

async function resolveDigest(repoTag: string): Promise<string> {
  const res = await skopeo(['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${reg.host}/${repoTag}`]);
  return res.stdout.trim();
}
