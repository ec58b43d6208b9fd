/**
 * imagegate's node model in a real one-node cluster (test/infra/cluster.sh): kube-apiserver and a kubelet built from
 * Kubernetes' Go modules, Debian's containerd 1.6 with the shipped deploy/runtime configuration (ctd-decoder calling
 * `imagegate keyprovider`, logged in to OpenBao as the node's AppRole), OpenBao set up by `imagegate vault setup`, and
 * the admission webhook (`imagegate webhook serve` on the host) behind the Helm chart's webhook configurations and
 * policy. No check container is injected here: cluster-gate.test.ts builds imagegate's own image and runs the gate's
 * scenarios with it.
 *
 * Every encrypted image gets a layer no other image has: containerd never decrypts a layer again once its plaintext
 * is on the node, so a reused layer would prove nothing about decryption.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterUnavailable, startCluster, type Cluster } from '../support/cluster.js';
import { buildOciLayout, type LayerFile } from '../support/image-builder.js';
import { imagegateOk } from '../support/imagegate.js';
import { skopeo, tempDir, type TempDir } from '../support/tools.js';

const skip = clusterUnavailable();

let cluster: Cluster | undefined;
let work: TempDir | undefined;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A pod on the cluster's node that runs showfiles on `files` and exits. */
function pod(name: string, namespace: string, image: string, files: string[], serviceAccount = 'default'): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: {
      nodeName: cluster!.env.NODE,
      serviceAccountName: serviceAccount,
      restartPolicy: 'Never',
      containers: [{ name: 'app', image, command: ['/bin/showfiles', ...files] }],
    },
  };
}

async function runPod(name: string, namespace: string, image: string, files: string[], serviceAccount?: string): Promise<string> {
  await cluster!.apply(pod(name, namespace, image, files, serviceAccount));
  const phase = await cluster!.podFinished(namespace, name).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await cluster!.diagnose(namespace, name)}`);
  });
  if (phase !== 'Succeeded') throw new Error(`pod ${namespace}/${name} ${phase}\n${await cluster!.diagnose(namespace, name)}`);
  return (await cluster!.kubectlOk(['-n', namespace, 'logs', name, '-c', 'app'])).stdout;
}

/** The OCI manifest of REPOSITORY:tag, straight from the registry (trusting its CA). */
async function registryManifest(repository: string, tag: string, caFile: string): Promise<{ layers: Array<{ mediaType: string }> }> {
  const slash = repository.indexOf('/');
  const agent = new Agent({ connect: { ca: await readFile(caFile, 'utf8') } });
  try {
    const res = await request(`https://${repository.slice(0, slash)}/v2/${repository.slice(slash + 1)}/manifests/${tag}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      dispatcher: agent,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET manifest ${repository}:${tag} answered ${res.statusCode}: ${text}`);
    return JSON.parse(text) as { layers: Array<{ mediaType: string }> };
  } finally {
    await agent.close();
  }
}

async function showfilesLayerFile(): Promise<LayerFile> {
  return { path: 'bin/showfiles', content: await readFile(cluster!.showfiles), mode: 0o755 };
}

/**
 * An image whose top layer holds `secret` in /app/secret.txt, encrypted for KEY into REPOSITORY:TAG. The secret is
 * new in every run, so no node has that layer's plaintext yet.
 */
async function pushEncryptedApp(tag: string, secret: string): Promise<string> {
  const env = cluster!.env;
  const app = await buildOciLayout(path.join(work!.path, `app-${tag}`), {
    tag,
    images: [{ layers: [{ files: [await showfilesLayerFile()] }, { files: [{ path: 'app/secret.txt', content: secret }] }] }],
  });
  const image = `${env.REPOSITORY}:${tag}`;
  await imagegateOk(['encrypt', `oci:${app.dir}:${tag}`, `docker://${image}`, '-r', `vault:${env.KEY}`, '--ca-cert', env.REGISTRY_CA, '-q'], {
    env: { VAULT_ADDR: env.VAULT_ADDR, VAULT_TOKEN: env.VAULT_TOKEN },
  });
  // Every layer in the registry is encrypted: a node can only read the secret through the key provider.
  const manifest = await registryManifest(env.REPOSITORY, tag, env.REGISTRY_CA);
  expect(manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip+encrypted', 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted']);
  return image;
}

async function startClusterAndWork(keysDir: 'on' | 'off'): Promise<void> {
  cluster = await startCluster({ keysDir });
  work = await tempDir('cluster-images-');
}

async function stopClusterAndWork(): Promise<void> {
  await cluster?.down();
  cluster = undefined;
  await work?.cleanup();
  work = undefined;
}

describe.skipIf(skip)('a one-node cluster (kube-apiserver, kubelet, containerd 1.6): node model, keys directory on (as shipped)', () => {
  const secret = `decrypted by containerd through imagegate keyprovider: ${randomUUID()}\n`;
  let plainImage: string;
  let plaintextImage: string;
  let encryptedImage: string;

  beforeAll(async () => {
    await startClusterAndWork('on');
    const env = cluster!.env;
    const plain = await buildOciLayout(path.join(work!.path, 'plain'), {
      tag: 'v1',
      images: [{ layers: [{ files: [await showfilesLayerFile(), { path: 'etc/plain.txt', content: 'a plain image from the plain-HTTP registry\n' }] }] }],
    });
    plainImage = `${env.PLAIN_REGISTRY}/imagegate-test/plain:v1`;
    await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${plain.dir}:v1`, `docker://${plainImage}`]);
    // The same image, plaintext, in the repository the policy protects (skopeo trusts the CA from a certs directory).
    const certs = path.join(work!.path, 'certs');
    await mkdir(certs);
    await copyFile(env.REGISTRY_CA, path.join(certs, 'ca.crt'));
    plaintextImage = `${env.REPOSITORY}:plaintext`;
    await skopeo(['copy', '-q', '--dest-cert-dir', certs, `oci:${plain.dir}:v1`, `docker://${plaintextImage}`]);
    encryptedImage = await pushEncryptedApp('v1', secret);
  }, 300_000);

  afterAll(stopClusterAndWork, 120_000);

  it('runs a plain pod from the plain-HTTP registry (the cluster works)', async () => {
    const logs = await runPod('plain', 'default', plainImage, ['/etc/plain.txt']);
    expect(logs).toBe('a plain image from the plain-HTTP registry\n');
  });

  it("runs an encrypted image from the TLS registry: containerd decrypts it through imagegate keyprovider as the node's AppRole", async () => {
    const env = cluster!.env;
    const logs = await runPod('encrypted', env.NAMESPACE, encryptedImage, ['/app/secret.txt'], env.SERVICE_ACCOUNT);
    expect(logs).toBe(secret);
    // The webhook admitted it, pinned to the digest it checked.
    const image = await cluster!.kubectlOk(['-n', env.NAMESPACE, 'get', 'pod', 'encrypted', '-o', 'jsonpath={.spec.containers[0].image}']);
    expect(image.stdout).toMatch(new RegExp(`^${escapeRegExp(env.REPOSITORY)}@sha256:[0-9a-f]{64}$`));
  });

  it('the webhook (from the Helm chart) denies a plaintext image in the protected repository, and kubectl shows why', async () => {
    const env = cluster!.env;
    const res = await cluster!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod('plaintext', env.NAMESPACE, plaintextImage, ['/etc/plain.txt'], env.SERVICE_ACCOUNT)) });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('admission webhook "mutate.imagegate.dev" denied the request');
    expect(res.stderr).toContain('[rule encryption-required]');
  });

  it('the webhook denies the encrypted image to a service account the policy does not allow', async () => {
    const env = cluster!.env;
    const res = await cluster!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod('intruder', env.NAMESPACE, encryptedImage, ['/app/secret.txt'], env.OTHER_SERVICE_ACCOUNT)) });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`service account ${env.NAMESPACE}/${env.OTHER_SERVICE_ACCOUNT} may not run images wrapped with transit/keys/`);
  });

  it("OpenBao's workload role takes a pod's projected token for the allowed service account only", async () => {
    const env = cluster!.env;
    const login = async (serviceAccount: string): Promise<number> => {
      const token = (await cluster!.kubectlOk(['-n', env.NAMESPACE, 'create', 'token', serviceAccount, '--audience', 'vault'])).stdout.trim();
      const res = await fetch(`${env.VAULT_ADDR}/v1/auth/jwt-kubernetes/login`, {
        method: 'POST',
        body: JSON.stringify({ role: env.NAMESPACE, jwt: token }),
      });
      await res.body?.cancel();
      return res.status;
    };
    expect(await login(env.SERVICE_ACCOUNT)).toBe(200);
    expect(await login(env.OTHER_SERVICE_ACCOUNT)).toBe(400);
  });
});

describe.skipIf(skip)('the same node without a keys directory (ctd-decoder without --decryption-keys-path)', () => {
  const secret = `decrypted without a keys directory: ${randomUUID()}\n`;
  let encryptedImage: string;

  beforeAll(async () => {
    await startClusterAndWork('off');
    encryptedImage = await pushEncryptedApp('v1', secret);
  }, 300_000);

  afterAll(stopClusterAndWork, 120_000);

  it('runs the encrypted image: containerd decrypts it through imagegate keyprovider', async () => {
    const env = cluster!.env;
    expect(await runPod('encrypted', env.NAMESPACE, encryptedImage, ['/app/secret.txt'], env.SERVICE_ACCOUNT)).toBe(secret);
  });
});
