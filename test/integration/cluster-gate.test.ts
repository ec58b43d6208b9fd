/**
 * The whole gate in the real one-node cluster (test/infra/cluster.sh), through kubectl: the webhook injects
 * imagegate's own runtime image (scripts/build-image.sh, built once for this file and pushed to the cluster's TLS
 * registry) as the check (node model) or the unpacker (pod model), the API server stores and runs what the webhook
 * decided, and the kubelet runs it with the pod's projected token against OpenBao. The node runs Debian's containerd
 * 1.6; the last suite runs the node model's two outcomes again on containerd 2.4.2 with config-v3.toml.
 *
 * Every encrypted image gets a layer no other image has: containerd never decrypts a layer again once its plaintext
 * is on the node, so a reused layer would prove nothing about decryption. Pods that reach OpenBao or a registry on
 * 127.0.0.1 use hostNetwork (the cluster has no NAT).
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImagegateImage, clusterUnavailable, startCluster, type Cluster, type ContainerStatus, type PodStatus } from '../support/cluster.js';
import { containerd2Unavailable } from '../support/containerd2.js';
import { buildOciLayout, type LayerFile } from '../support/image-builder.js';
import { imagegateOk } from '../support/imagegate.js';
import { tamperLayerConsistently } from '../support/tamper.js';
import { run, skopeo, tempDir, type TempDir } from '../support/tools.js';

const skip = clusterUnavailable();
/** The containerd 2 suite also needs test/infra/build-containerd2.sh's binaries. */
const skipContainerd2 = skip ?? containerd2Unavailable();

let work: TempDir | undefined;
/** DIR:TAG of imagegate's runtime image, built once for all clusters. */
let checkLayout: string;
let cluster: Cluster | undefined;
/** A certs directory trusting the TLS registry's CA, for skopeo. */
let certDir: string;

beforeAll(async () => {
  if (skip !== undefined) return;
  work = await tempDir('cluster-gate-');
  checkLayout = await buildImagegateImage(work.path);
}, 300_000);

afterAll(async () => {
  await cluster?.down();
  await work?.cleanup();
}, 120_000);

async function startGateCluster(runtimeModel: 'node' | 'pod', containerd: 1 | 2 = 1): Promise<void> {
  cluster = await startCluster({ runtimeModel, checkLayout, containerd });
  certDir = path.join(work!.path, `certs-${runtimeModel}${containerd === 2 ? '-containerd2' : ''}`);
  await mkdir(certDir, { recursive: true });
  await copyFile(cluster.env.REGISTRY_CA, path.join(certDir, 'ca.crt'));
}

async function stopGateCluster(): Promise<void> {
  await cluster?.down();
  cluster = undefined;
}

async function showfilesLayerFile(): Promise<LayerFile> {
  return { path: 'bin/showfiles', content: await readFile(cluster!.showfiles), mode: 0o755 };
}

/** An OCI layout: showfiles in the bottom layer, `/app/secret.txt` = `secret` in the top one. */
async function appLayout(name: string, secret: string): Promise<string> {
  const built = await buildOciLayout(path.join(work!.path, name), {
    tag: 'v1',
    images: [{ layers: [{ files: [await showfilesLayerFile()] }, { files: [{ path: 'app/secret.txt', content: secret }] }] }],
  });
  return `${built.dir}:v1`;
}

/** `imagegate encrypt SRC DST -r vault:KEY` with OpenBao's root token; returns the pushed manifest's digest. */
async function encrypt(source: string, destination: string, ...extra: string[]): Promise<string> {
  const env = cluster!.env;
  const res = await imagegateOk(['encrypt', source, destination, '-r', `vault:${env.KEY}`, '--ca-cert', env.REGISTRY_CA, '-q', ...extra], {
    env: { VAULT_ADDR: env.VAULT_ADDR, VAULT_TOKEN: env.VAULT_TOKEN },
  });
  return res.stdout.trim();
}

/** A new image with a layer no node has seen, encrypted for KEY into REPOSITORY:TAG (or another repository). */
async function pushEncryptedApp(tag: string, secret: string, repository = cluster!.env.REPOSITORY, ...extra: string[]): Promise<string> {
  await encrypt(`oci:${await appLayout(`app-${tag}`, secret)}`, `docker://${repository}:${tag}`, ...extra);
  return `${repository}:${tag}`;
}

interface PodOptions {
  serviceAccount?: string;
  command?: string[];
  initContainers?: unknown[];
}

/** A pod on the node, host network (OpenBao and the registries are on 127.0.0.1), never restarted. */
function pod(name: string, image: string, options: PodOptions = {}): Record<string, unknown> {
  const env = cluster!.env;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: env.NAMESPACE },
    spec: {
      nodeName: env.NODE,
      hostNetwork: true,
      serviceAccountName: options.serviceAccount ?? env.SERVICE_ACCOUNT,
      restartPolicy: 'Never',
      ...(options.initContainers !== undefined ? { initContainers: options.initContainers } : {}),
      containers: [{ name: 'app', image, command: options.command ?? ['/bin/showfiles', '/app/secret.txt'] }],
    },
  };
}

/** Creates the pod, waits for it to succeed and returns the app's log; any other end fails with the pod's story. */
async function runPod(manifest: Record<string, unknown>): Promise<string> {
  const { name, namespace } = manifest.metadata as { name: string; namespace: string };
  await cluster!.apply(manifest);
  const phase = await cluster!.podFinished(namespace, name).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await cluster!.diagnose(namespace, name)}`);
  });
  if (phase !== 'Succeeded') throw new Error(`pod ${namespace}/${name} ${phase}\n${await cluster!.diagnose(namespace, name)}`);
  return (await cluster!.kubectlOk(['-n', namespace, 'logs', name, '-c', 'app'])).stdout;
}

/** `kubectl apply` that the API server is expected to refuse: its stderr. */
async function refused(manifest: unknown, ...flags: string[]): Promise<string> {
  const res = await cluster!.kubectl(['apply', ...flags, '-f', '-'], { input: JSON.stringify(manifest) });
  expect(res.code, res.stdout).not.toBe(0);
  return res.stderr;
}

/** Creates the pod and waits for it to fail; returns its statuses and `kubectl describe`. */
async function failedPod(manifest: Record<string, unknown>): Promise<{ init: ContainerStatus[]; app: ContainerStatus[]; described: string }> {
  const { name, namespace } = manifest.metadata as { name: string; namespace: string };
  await cluster!.apply(manifest);
  const outcome = await cluster!.podOutcome(namespace, name);
  if (!('phase' in outcome) || outcome.phase !== 'Failed') {
    throw new Error(`pod ${namespace}/${name} was expected to fail\n${await cluster!.diagnose(namespace, name)}`);
  }
  const described = (await cluster!.kubectlOk(['-n', namespace, 'describe', 'pod', name])).stdout;
  return { init: outcome.status.initContainerStatuses ?? [], app: outcome.status.containerStatuses ?? [], described };
}

/** The images containerd holds on the node (CRI namespace), by reference. */
async function nodeImages(): Promise<string> {
  const res = await run(cluster!.ctr, ['--address', cluster!.env.CONTAINERD_ADDRESS, '-n', 'k8s.io', 'images', 'ls', '-q']);
  return res.stdout;
}

/** Waits for the kubelet's `Failed` event of pulling the pod's image, and returns its message. */
async function pullFailure(name: string): Promise<string> {
  const env = cluster!.env;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await cluster!.kubectlOk(['-n', env.NAMESPACE, 'get', 'events', '-o', 'json', '--field-selector', `involvedObject.name=${name},reason=Failed`]);
    const events = (JSON.parse(res.stdout) as { items: Array<{ message?: string }> }).items;
    const pull = events.find((e) => e.message?.startsWith('Failed to pull image'));
    if (pull !== undefined) return pull.message!;
    if (Date.now() > deadline) throw new Error(`no image pull failure for pod ${name} within 60 s\n${await cluster!.diagnose(env.NAMESPACE, name)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Waits until the API server shows the pod's first init container terminated (the kubelet reports asynchronously). */
async function initFinished(name: string): Promise<PodStatus> {
  const env = cluster!.env;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = (await cluster!.getPod(env.NAMESPACE, name)).status ?? {};
    if (status.initContainerStatuses?.[0]?.state?.terminated !== undefined) return status;
    if (Date.now() > deadline) throw new Error(`pod ${name}: its init container has not finished after 30 s\n${await cluster!.diagnose(env.NAMESPACE, name)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Waits until the webhook has re-read its policy `times` times in all. */
async function policyReloaded(times: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const log = await readFile(cluster!.env.WEBHOOK_LOG, 'utf8');
    if (log.split(`reloaded ${cluster!.env.POLICY_FILE}`).length - 1 >= times) return;
    if (Date.now() > deadline) throw new Error(`the webhook did not re-read ${cluster!.env.POLICY_FILE} within 30 s:\n${log.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** What the injected container says when OpenBao's role refuses the pod's token (vault-setup.yaml: one role per namespace). */
const VAULT_REFUSED = 'refused the jwt login at auth/jwt-kubernetes/login as role "imagegate-demo": error validating claims: claim "sub" does not match';

describe.skipIf(skip)('the gate in a one-node cluster, node model: imagegate init --check injected from its own image', () => {
  const secret = `only the encrypted layer holds this: ${randomUUID()}\n`;
  let image: string;
  let digest: string;
  let plainImage: string;

  beforeAll(async () => {
    await startGateCluster('node');
    const env = cluster!.env;
    image = await pushEncryptedApp('v1', secret);
    digest = (await skopeo(['inspect', '--cert-dir', certDir, '--format', '{{.Digest}}', `docker://${image}`])).stdout.trim();
    const plain = await buildOciLayout(path.join(work!.path, 'plain'), {
      tag: 'v1',
      images: [{ layers: [{ files: [await showfilesLayerFile(), { path: 'etc/plain.txt', content: 'a plain image\n' }] }] }],
    });
    plainImage = `${env.PLAIN_REGISTRY}/imagegate-test/plain:v1`;
    await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${plain.dir}:v1`, `docker://${plainImage}`]);
  }, 300_000);

  afterAll(stopGateCluster, 120_000);

  it('a service account the policy admits but OpenBao does not: the check fails and the app never starts, nor is its image pulled', async () => {
    const env = cluster!.env;
    const fresh = await pushEncryptedApp('fresh', `never pulled: ${randomUUID()}\n`);
    const { init, app, described } = await failedPod(pod('unvaulted-fresh', fresh, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT }));
    expect(init[0]?.name).toBe('imagegate-check');
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    // FallbackToLogsOnError: the check's own message is the container's termination message, shown by describe.
    const message = init[0]?.state?.terminated?.message ?? '';
    expect(message).toContain(VAULT_REFUSED);
    expect(described).toContain(VAULT_REFUSED);
    expect(app[0]?.state?.running).toBeUndefined();
    expect(app[0]?.state?.terminated).toBeUndefined();
    // The kubelet pulls an app image only to start the app: the encrypted layers never reached the node.
    expect(await nodeImages()).not.toContain(`${env.REPOSITORY}:fresh`);
    expect(await nodeImages()).not.toContain(`imagegate-demo/app@`);
  });

  it('an allowed service account: pinned, checked with its projected token, decrypted by containerd through imagegate keyprovider', async () => {
    const env = cluster!.env;
    expect(await runPod(pod('allowed', image))).toBe(secret);
    const stored = await cluster!.getPod(env.NAMESPACE, 'allowed');
    expect(stored.spec.containers[0].image).toBe(`${env.REPOSITORY}@${digest}`);
    const check = stored.spec.initContainers[0];
    expect(check.name).toBe('imagegate-check');
    expect(check.image).toBe(env.CHECK_IMAGE);
    expect(check.args).toEqual(['init', '--check', '--insecure-registry', env.PLAIN_REGISTRY, `docker://${env.REPOSITORY}@${digest}`]);
    // The registry's CA, as the webhook was given it (--check-registry-ca): the check reached the TLS registry with it.
    const caEnv = (check.env as Array<{ name: string; value: string }>).find((e) => e.name === 'IMAGEGATE_REGISTRY_CA');
    expect(caEnv?.value).toBe(await readFile(env.REGISTRY_CA, 'utf8'));
    const checkLog = (await cluster!.kubectlOk(['-n', env.NAMESPACE, 'logs', 'allowed', '-c', 'imagegate-check'])).stdout;
    expect(checkLog).toMatch(/2 of 2 layer key\(s\) unwrapped/);
  });

  it('the same service account the policy admits but OpenBao does not, on a node that already holds the layers: the check still stops it', async () => {
    const env = cluster!.env;
    expect(await nodeImages()).toContain(`${env.REPOSITORY}@${digest}`);
    const { init, app, described } = await failedPod(pod('unvaulted-cached', image, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT }));
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    expect(described).toContain(VAULT_REFUSED);
    expect(app[0]?.state?.running).toBeUndefined();
    expect(app[0]?.state?.terminated).toBeUndefined();
  });

  it('a byte-for-byte copy in another repository is refused (binding-mismatch), and a server-side dry run says the same', async () => {
    const env = cluster!.env;
    const stolen = `${env.REGISTRY}/attacker/stolen:1`;
    await skopeo(['copy', '-q', '--src-cert-dir', certDir, '--dest-cert-dir', certDir, `docker://${image}`, `docker://${stolen}`]);
    const real = await refused(pod('stolen', stolen));
    expect(real).toContain('admission webhook "mutate.imagegate.dev" denied the request');
    expect(real).toContain(`are bound to ${env.REPOSITORY}, not to ${env.REGISTRY}/attacker/stolen`);
    expect(real).toContain('[rule binding-mismatch]');
    const dryRun = await refused(pod('stolen', stolen), '--dry-run=server');
    expect(dryRun).toContain('[rule binding-mismatch]');
    // Another spelling of the same registry (its certificate names localhost too): not the repository it is bound to.
    const respelled = `${env.REPOSITORY.replace(/^127\.0\.0\.1:/, 'localhost:')}@${digest}`;
    const other = await refused(pod('respelled', respelled));
    expect(other).toContain(`are bound to ${env.REPOSITORY}, not to ${respelled.slice(0, respelled.indexOf('@'))}`);
  });

  it('a server-side dry run of an allowed pod returns it pinned, with the check injected, as a real create would', async () => {
    const env = cluster!.env;
    const res = await cluster!.kubectlOk(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod('dry-run', image)) });
    const answer = JSON.parse(res.stdout) as { spec: { containers: Array<{ image: string }>; initContainers: Array<{ name: string; image: string }> } };
    expect(answer.spec.containers[0]!.image).toBe(`${env.REPOSITORY}@${digest}`);
    expect(answer.spec.initContainers.map((c) => [c.name, c.image])).toEqual([['imagegate-check', env.CHECK_IMAGE]]);
    expect((await cluster!.kubectl(['-n', env.NAMESPACE, 'get', 'pod', 'dry-run'])).code).not.toBe(0);
  });

  it('a plaintext image in the protected repository is refused, and kubectl shows why', async () => {
    const env = cluster!.env;
    const plaintext = `${env.REPOSITORY}:plaintext`;
    await skopeo(['copy', '-q', '--src-tls-verify=false', '--dest-cert-dir', certDir, `docker://${plainImage}`, `docker://${plaintext}`]);
    const stderr = await refused(pod('plaintext', plaintext, { command: ['/bin/showfiles', '/etc/plain.txt'] }));
    expect(stderr).toContain('admission webhook "mutate.imagegate.dev" denied the request');
    expect(stderr).toContain('[rule encryption-required]');
  });

  it('a pod bringing its own imagegate-check gets the genuine one instead, and the genuine one runs (and fails for this account)', async () => {
    const env = cluster!.env;
    const forged = { name: 'imagegate-check', image: plainImage, command: ['/bin/showfiles', '/etc/plain.txt'] };
    const manifest = pod('own-check', image, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT, initContainers: [forged] });
    const { init, described } = await failedPod(manifest);
    const stored = await cluster!.getPod(env.NAMESPACE, 'own-check');
    expect(stored.spec.initContainers.map((c: { name: string; image: string }) => [c.name, c.image])).toEqual([['imagegate-check', env.CHECK_IMAGE]]);
    expect(init.map((c) => c.name)).toEqual(['imagegate-check']);
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    expect(described).toContain(VAULT_REFUSED);
  });

  it('kubectl debug cannot attach an encrypted image to a running pod without the check', async () => {
    const env = cluster!.env;
    const target = pod('debug-target', plainImage, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT, command: ['/bin/showfiles', '-wait', '/etc/plain.txt'] });
    await cluster!.apply(target);
    await cluster!.kubectlOk(['-n', env.NAMESPACE, 'wait', '--for=condition=Ready', 'pod/debug-target', '--timeout=60s']);
    const debug = await cluster!.kubectl(['-n', env.NAMESPACE, 'debug', 'debug-target', `--image=${env.REPOSITORY}@${digest}`, '-c', 'peek', '--', '/bin/showfiles', '/app/secret.txt']);
    expect(debug.code, debug.stdout).not.toBe(0);
    expect(debug.stderr).toContain('imagegate');
    console.log(`kubectl debug with an encrypted image: ${debug.stderr.trim()}`);
    const stored = await cluster!.getPod(env.NAMESPACE, 'debug-target');
    expect(stored.spec.ephemeralContainers ?? []).toEqual([]);

    // A pod that passed the check for its own image cannot add another encrypted image: the check no longer covers it.
    const checked = pod('debug-checked', image, { command: ['/bin/showfiles', '-wait', '/app/secret.txt'] });
    await cluster!.apply(checked);
    await cluster!.kubectlOk(['-n', env.NAMESPACE, 'wait', '--for=condition=Ready', 'pod/debug-checked', '--timeout=60s']);
    const another = await pushEncryptedApp('debug', `another image: ${randomUUID()}\n`);
    const added = await cluster!.kubectl(['-n', env.NAMESPACE, 'debug', 'debug-checked', `--image=${another}`, '-c', 'peek', '--', '/bin/showfiles', '/app/secret.txt']);
    expect(added.code, added.stdout).not.toBe(0);
    console.log(`kubectl debug of a checked pod with another encrypted image: ${added.stderr.trim()}`);
    expect(added.stderr).toContain(`ephemeral container peek adds protected image ${env.REPOSITORY}@sha256:`);
    expect(added.stderr).toContain("which the pod's imagegate-check (fixed when the pod was created) does not cover");
    expect((await cluster!.getPod(env.NAMESPACE, 'debug-checked')).spec.ephemeralContainers ?? []).toEqual([]);
  });

  it('a tampered encrypted layer (registry write, republished consistently) is refused by the runtime', async () => {
    const env = cluster!.env;
    const layout = path.join(work!.path, 'tampered');
    await encrypt(`oci:${await appLayout('app-tampered', `tampered: ${randomUUID()}\n`)}`, `oci:${layout}:v1`, '--bind', env.REPOSITORY);
    await tamperLayerConsistently(layout, 'v1', 1);
    const tampered = `${env.REPOSITORY}:tampered`;
    await skopeo(['copy', '-q', '--dest-cert-dir', certDir, `oci:${layout}:v1`, `docker://${tampered}`]);
    await cluster!.apply(pod('tampered', tampered));
    // The kubelet's event comes at once; the pod's status shows ErrImagePull only at its next sync (~15 s later).
    const failed = await pullFailure('tampered');
    console.log(`tampered layer, kubelet: ${failed}`);
    // ocicrypt's HMAC check at the end of the layer (ctd-decoder), or, when the flipped byte broke the gzip stream
    // first, containerd's diff-id check: either way nothing of the layer is committed and the app never starts.
    expect(failed).toMatch(/could not properly decrypt byte stream; exp hmac|wrong diff id calculated on extraction/);
    const status = await initFinished('tampered');
    expect(status.containerStatuses?.[0]?.state?.running).toBeUndefined();
    expect(status.containerStatuses?.[0]?.state?.terminated).toBeUndefined();
    // The check passed (it unwraps keys, no layer bytes); the runtime's integrity checks are what refuse the layer.
    expect(status.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
  });

  it('the plain-HTTP registry: the check reaches it while the policy lists it in insecureRegistries, and fails without', async () => {
    const env = cluster!.env;
    const plainSecret = `from the plain-HTTP registry: ${randomUUID()}\n`;
    const plainEncrypted = await pushEncryptedApp('v1', plainSecret, env.PLAIN_REPOSITORY, '--insecure-registry', env.PLAIN_REGISTRY);
    expect(await runPod(pod('plain-http', plainEncrypted))).toBe(plainSecret);

    const policy = parse(await readFile(env.POLICY_FILE, 'utf8')) as { insecureRegistries?: string[] };
    expect(policy.insecureRegistries).toEqual([env.PLAIN_REGISTRY]);
    delete policy.insecureRegistries;
    // Replaced whole (a rename), so the webhook never reads a half-written policy.
    await writeFile(`${env.POLICY_FILE}.new`, stringify(policy));
    await rename(`${env.POLICY_FILE}.new`, env.POLICY_FILE);
    await policyReloaded(1);
    const { init, described } = await failedPod(pod('plain-http-unlisted', plainEncrypted));
    const stored = await cluster!.getPod(env.NAMESPACE, 'plain-http-unlisted');
    expect(stored.spec.initContainers[0].args).not.toContain('--insecure-registry');
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    console.log(`the check against the plain registry, not listed: ${init[0]?.state?.terminated?.message ?? ''}`);
    expect(described).toContain(`${env.PLAIN_REGISTRY} does not speak TLS`);
  });
});

describe.skipIf(skip)('the gate in a one-node cluster, pod model: imagegate init --unpack into the pod\'s volumes', () => {
  const secret = `unpacked into an emptyDir by the pod itself: ${randomUUID()}\n`;
  let image: string;
  let baseDigest: string;

  beforeAll(async () => {
    await startGateCluster('pod');
    const env = cluster!.env;
    // The plaintext base (showfiles) in a repository no rule protects; the app layer above it, encrypted.
    const base = await buildOciLayout(path.join(work!.path, 'pod-base'), { tag: 'v1', images: [{ layers: [{ files: [await showfilesLayerFile()] }] }] });
    const baseImage = `${env.REGISTRY}/public/base:1`;
    await skopeo(['copy', '-q', '--dest-cert-dir', certDir, `oci:${base.dir}:v1`, `docker://${baseImage}`]);
    baseDigest = (await skopeo(['inspect', '--cert-dir', certDir, '--format', '{{.Digest}}', `docker://${baseImage}`])).stdout.trim();
    image = `${env.REPOSITORY}:pod`;
    await encrypt(`oci:${await appLayout('pod-app', secret)}`, `docker://${image}`, '--plain-base', `docker://${baseImage}`, '--paths', 'app');
  }, 300_000);

  afterAll(stopGateCluster, 120_000);

  it('an allowed service account: the base is swapped in, the unpacker runs non-root on a read-only root into the emptyDir, the app runs from it', async () => {
    const env = cluster!.env;
    expect(await runPod(pod('allowed', image))).toBe(secret);
    const stored = await cluster!.getPod(env.NAMESPACE, 'allowed');
    expect(stored.spec.containers[0].image).toBe(`${env.REGISTRY}/public/base@${baseDigest}`);
    const unpack = stored.spec.initContainers[0];
    expect(unpack.name).toBe('imagegate-unpack-app');
    expect(unpack.image).toBe(env.CHECK_IMAGE);
    expect(unpack.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    const appVolume = (stored.spec.containers[0].volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.mountPath === '/app');
    expect(stored.spec.volumes).toContainEqual({ name: appVolume!.name, emptyDir: {} });
    expect(unpack.volumeMounts).toContainEqual({ name: appVolume!.name, mountPath: '/imagegate/unpack/app' });
    const log = (await cluster!.kubectlOk(['-n', env.NAMESPACE, 'logs', 'allowed', '-c', unpack.name])).stdout;
    expect(log).toMatch(/1 layer\(s\) verified and unpacked into \/imagegate\/unpack/);
  });

  it('a service account the policy admits but OpenBao does not: nothing is unpacked, the pod fails with the unpacker\'s message', async () => {
    const env = cluster!.env;
    const { init, app, described } = await failedPod(pod('unvaulted', image, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT }));
    expect(init[0]?.name).toBe('imagegate-unpack-app');
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    expect(init[0]?.state?.terminated?.message ?? '').toContain(VAULT_REFUSED);
    expect(described).toContain(VAULT_REFUSED);
    expect(app[0]?.state?.running).toBeUndefined();
    expect(app[0]?.state?.terminated).toBeUndefined();
  });
});

describe.skipIf(skipContainerd2)('the gate in a one-node cluster, node model on containerd 2.4.2 with deploy/runtime/containerd/config-v3.toml', () => {
  const secret = `containerd 2 decrypted this layer: ${randomUUID()}\n`;
  let image: string;
  let digest: string;

  beforeAll(async () => {
    await startGateCluster('node', 2);
    image = await pushEncryptedApp('containerd2', secret);
    digest = (await skopeo(['inspect', '--cert-dir', certDir, '--format', '{{.Digest}}', `docker://${image}`])).stdout.trim();
  }, 300_000);

  afterAll(stopGateCluster, 120_000);

  it('the node runs containerd 2.4.2, which imports the shipped config-v3.toml (local pull, node key model) as its drop-in', async () => {
    const env = cluster!.env;
    const node = JSON.parse((await cluster!.kubectlOk(['get', 'node', env.NODE, '-o', 'json'])).stdout) as { status: { nodeInfo: { containerRuntimeVersion: string } } };
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/v?2\.4\.2$/);
    const dropIn = await readFile(path.join(cluster!.dir, 'containerd/conf.d/imagegate.toml'), 'utf8');
    expect(dropIn).toContain('use_local_image_pull = true');
    expect(dropIn).toContain("key_model = 'node'");
    expect(dropIn).not.toContain("'/etc/containerd/");
  });

  it('a service account the policy admits but OpenBao does not: the check fails and the app never starts, nor is its image pulled', async () => {
    const env = cluster!.env;
    const { init, app, described } = await failedPod(pod('unvaulted', image, { serviceAccount: env.POLICY_ONLY_SERVICE_ACCOUNT }));
    expect(init[0]?.name).toBe('imagegate-check');
    expect(init[0]?.state?.terminated?.exitCode).not.toBe(0);
    expect(init[0]?.state?.terminated?.message ?? '').toContain(VAULT_REFUSED);
    expect(described).toContain(VAULT_REFUSED);
    expect(app[0]?.state?.running).toBeUndefined();
    expect(app[0]?.state?.terminated).toBeUndefined();
    expect(await nodeImages()).not.toContain(`imagegate-demo/app@`);
  });

  it('an allowed service account: the check passes with its projected token, containerd 2 decrypts through imagegate keyprovider', async () => {
    const env = cluster!.env;
    // The layer is new to this node (a fresh containerd root, a unique secret): the app's output was decrypted here.
    expect(await runPod(pod('allowed', image))).toBe(secret);
    const stored = await cluster!.getPod(env.NAMESPACE, 'allowed');
    expect(stored.spec.containers[0].image).toBe(`${env.REPOSITORY}@${digest}`);
    expect(stored.spec.initContainers.map((c: { name: string; image: string }) => [c.name, c.image])).toEqual([['imagegate-check', env.CHECK_IMAGE]]);
    const checkLog = (await cluster!.kubectlOk(['-n', env.NAMESPACE, 'logs', 'allowed', '-c', 'imagegate-check'])).stdout;
    expect(checkLog).toMatch(/2 of 2 layer key\(s\) unwrapped/);
    expect(await nodeImages()).toContain(`${env.REPOSITORY}@${digest}`);
  });
});
