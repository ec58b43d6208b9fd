/**
 * The real one-node Kubernetes cluster of test/infra/cluster.sh for integration tests: etcd, kube-apiserver, a
 * kubelet and containerd (with imagegate's node model), OpenBao set up by `imagegate vault setup`, two registries and
 * the admission webhook (from the Helm chart's configurations), all on 127.0.0.1 under a temp directory.
 *
 * The Kubernetes binaries come from test/infra/build-kubernetes.sh (cached outside the repo). As with the other built
 * tools (built-tools.ts), a local run never builds them: without the cache, or without what the cluster needs from the
 * machine (root, no other kubelet running), the suite skips with the reason on stderr. Under CI=true a missing build
 * is built here (.ci/run has normally built it already) and anything missing is a failure.
 *
 * Lifecycle: `startCluster` in `beforeAll`, `await cluster?.down()` in `afterAll`. Should the worker exit without
 * that, an exit hook runs `cluster.sh down` (the daemons run in their own sessions and would outlive the tests).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findDeployTools } from './deploy-tools.js';
import { findOpenBao } from './openbao.js';
import { run, runOk, tempDir, type RunOptions, type RunResult } from './tools.js';

const INFRA = fileURLToPath(new URL('../infra/', import.meta.url));
const CLUSTER_SH = path.join(INFRA, 'cluster.sh');
const BUILD_SH = path.join(INFRA, 'build-kubernetes.sh');
const BUILD_CONTAINERD2_SH = path.join(INFRA, 'build-containerd2.sh');
const BUILD_IMAGE_SH = fileURLToPath(new URL('../../scripts/build-image.sh', import.meta.url));
const POD_TIMEOUT_MS = 120_000;

/** Waiting reasons of a container that the kubelet will not get past by itself. */
const STUCK_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerError', 'CreateContainerConfigError', 'RunContainerError']);

/** A container's state as the kubelet reports it (the fields the tests read). */
export interface ContainerStatus {
  name: string;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: object;
    terminated?: { exitCode?: number; reason?: string; message?: string };
  };
}

export interface PodStatus {
  phase?: string;
  initContainerStatuses?: ContainerStatus[];
  containerStatuses?: ContainerStatus[];
}

/** How a pod ended up: finished (Succeeded or Failed), or stuck with a container the kubelet will not get past. */
export type PodOutcome = { phase: 'Succeeded' | 'Failed'; status: PodStatus } | { stuck: { container: string; reason: string; message: string }; status: PodStatus };

/** DIR/cluster.env, as `cluster.sh up` writes it. */
export interface ClusterEnv {
  KUBECONFIG: string;
  /** host:port of the TLS registry (its own CA: REGISTRY_CA) */
  REGISTRY: string;
  REGISTRY_CA: string;
  /** host:port of the plain-HTTP registry */
  PLAIN_REGISTRY: string;
  VAULT_ADDR: string;
  /** OpenBao's root token: may encrypt with KEY */
  VAULT_TOKEN: string;
  /** `transit/NAME`: a derived aes256-gcm96 key */
  KEY: string;
  /** REGISTRY/NAMESPACE/app: the repository meant for KEY's images */
  REPOSITORY: string;
  NAMESPACE: string;
  /** in NAMESPACE, may log in to OpenBao's workload role and decrypt with KEY */
  SERVICE_ACCOUNT: string;
  /** in NAMESPACE, allowed nothing */
  OTHER_SERVICE_ACCOUNT: string;
  /** in NAMESPACE, admitted by the policy for KEY, but OpenBao's role does not take it: only the injected check stops it */
  POLICY_ONLY_SERVICE_ACCOUNT: string;
  /** PLAIN_REGISTRY/NAMESPACE/app: protected like REPOSITORY; the policy's insecureRegistries lists PLAIN_REGISTRY */
  PLAIN_REPOSITORY: string;
  /** the policy's runtimeModel */
  RUNTIME_MODEL: 'node' | 'pod';
  /** imagegate's image the webhook injects (REPO@DIGEST), or empty when it injects nothing */
  CHECK_IMAGE: string;
  /** the policy file the webhook reads (and re-reads within about 5 s of a change) */
  POLICY_FILE: string;
  /** the webhook's stdout and stderr */
  WEBHOOK_LOG: string;
  NODE: string;
  KUBECTL: string;
  /** kubectl's discovery cache, under the cluster directory (not ~/.kube/cache) */
  KUBECACHEDIR: string;
  CONTAINERD_ADDRESS: string;
  /** the imagegate CLI (dist/ on Node 24) as one executable, as the node's key provider runs it */
  IMAGEGATE: string;
}

export interface Cluster {
  dir: string;
  env: ClusterEnv;
  /** the node's containerd: 1 (Debian's 1.6) or 2 (2.4.2, test/infra/build-containerd2.sh) */
  containerd: 1 | 2;
  /** the `ctr` matching that containerd (Debian's on PATH, or containerd 2's), for CONTAINERD_ADDRESS */
  ctr: string;
  /** test/infra/kubernetes/showfiles, built: a static program that prints the files it is given (for test images) */
  showfiles: string;
  kubectl(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  kubectlOk(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `kubectl apply -f -` of these objects. */
  apply(...objects: unknown[]): Promise<RunResult>;
  /**
   * Waits until the pod has finished (Succeeded or Failed) and returns its phase; throws at once when a container is
   * stuck (ErrImagePull and the like, with the kubelet's message), and after two minutes.
   */
  podFinished(namespace: string, name: string): Promise<string>;
  /** Waits, as podFinished does, but returns a stuck container (its reason and the kubelet's message) instead of throwing. */
  podOutcome(namespace: string, name: string): Promise<PodOutcome>;
  /** The pod as the API server stores it (`kubectl get -o json`). */
  getPod(namespace: string, name: string): Promise<{ metadata: Record<string, unknown>; spec: Record<string, any>; status?: PodStatus }>;
  /** What to print when a pod did not do what a test expected: `kubectl describe` and the ends of the node's logs. */
  diagnose(namespace: string, name: string): Promise<string>;
  down(): Promise<void>;
}

/** Why the cluster cannot run here, or undefined when it can (and the build is there, or was just built under CI). */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root (containerd, runc, the kubelet)';
  const kubelet = runningKubelet();
  if (kubelet !== undefined) return `a kubelet already runs on this machine (pid ${kubelet}); one per machine`;
  if (!findOpenBao()) return 'OpenBao is not built (test/infra/build-openbao.sh)';
  if (!findDeployTools()) return 'helm is not built (test/infra/build-deploy-tools.sh): the webhook comes from the chart';
  if (!built()) {
    if (process.env.CI !== 'true') return `Kubernetes is not built; build it with ${BUILD_SH}`;
    const build = spawnSync(BUILD_SH, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (build.status !== 0 || !built()) {
      const how = build.error?.message ?? (build.signal ? `killed by ${build.signal}` : `exit ${build.status}`);
      throw new Error(`the test cluster is required under CI=true, but ${BUILD_SH} failed (${how})`);
    }
  }
  return undefined;
}

/** The pid of a kubelet process that runs (a zombie left by an earlier cluster does not count), or undefined. */
function runningKubelet(): string | undefined {
  const pgrep = spawnSync('pgrep', ['-x', 'kubelet'], { encoding: 'utf8' });
  return pgrep.stdout
    .split('\n')
    .filter((pid) => pid !== '')
    .find((pid) => {
      try {
        // /proc/PID/stat: "PID (COMM) STATE ..."
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
      } catch {
        return false;
      }
    });
}

function binDir(): string {
  return execFileSync(BUILD_SH, ['--path'], { encoding: 'utf8' }).trim();
}

function built(): boolean {
  const bin = binDir();
  return ['kube-apiserver', 'kubelet', 'kubectl', 'etcd', 'crictl', 'ctd-decoder', 'showfiles', 'pause.tar'].every((f) =>
    existsSync(path.join(bin, f)),
  );
}

let checked: { reason: string | undefined } | undefined;

/**
 * Whether the cluster can run here: undefined when it can, else the reason (also printed once on stderr), so a suite
 * can `describe.skipIf(clusterUnavailable())`. Under CI=true every reason is a failure (it throws).
 */
export function clusterUnavailable(): string | undefined {
  if (checked === undefined) {
    const reason = unavailable();
    if (reason !== undefined && process.env.CI === 'true') {
      throw new Error(`the test cluster is required for the integration tests under CI=true, but ${reason}`);
    }
    if (reason !== undefined) process.stderr.write(`test cluster: skipping: ${reason}\n`);
    checked = { reason };
  }
  return checked.reason;
}

const running = new Set<string>();
process.on('exit', () => {
  for (const dir of running) spawnSync(CLUSTER_SH, ['down', dir], { stdio: 'ignore' });
});

export interface ClusterOptions {
  /**
   * ctd-decoder's keys directory (`--decryption-keys-path`): on as deploy/runtime/containerd/config-v2.toml ships it
   * (the default), or off. ocicrypt's key-provider requests differ between the two.
   */
  keysDir?: 'on' | 'off';
  /** The policy's runtimeModel (default node). */
  runtimeModel?: 'node' | 'pod';
  /**
   * `DIR:TAG`, an OCI layout of imagegate's own image (buildImagegateImage): pushed to the TLS registry and injected
   * by the webhook, by digest, as `imagegate init --check` (node model) or `init --unpack` (pod model). Without it
   * nothing is injected.
   */
  checkLayout?: string;
  /**
   * The node's containerd (default 1): Debian's 1.6 with deploy/runtime/containerd/config-v2.toml, or 2.4.2 with
   * config-v3.toml as a conf.d drop-in. For 2, check `containerd2Unavailable()` (support/containerd2.ts) first.
   */
  containerd?: 1 | 2;
}

/**
 * imagegate's runtime image (scripts/build-image.sh: the repo's src/ built with production dependencies, Node 24,
 * user 65532) as an OCI layout in `dir`; returns `DIR:TAG` for ClusterOptions.checkLayout. About 10 s.
 */
export async function buildImagegateImage(dir: string, tag = 'cluster'): Promise<string> {
  const layout = path.join(dir, 'imagegate-image');
  await runOk(BUILD_IMAGE_SH, [layout, tag]);
  return `${layout}:${tag}`;
}

/** `cluster.sh up` into a fresh temp dir. Call `clusterUnavailable()` first. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const containerd = options.containerd ?? 1;
  const work = await tempDir('cluster-');
  const dir = work.path;
  running.add(dir);
  const down = async (): Promise<void> => {
    if (!running.delete(dir)) return;
    const result = await run(CLUSTER_SH, ['down', dir]);
    if (result.code !== 0) throw new Error(`cluster.sh down ${dir} failed:\n${result.stderr}`);
    await work.cleanup();
  };
  const up = await run(CLUSTER_SH, ['up', dir], {
    env: {
      IMAGEGATE_CLUSTER_KEYS_DIR: options.keysDir ?? 'on',
      IMAGEGATE_CLUSTER_RUNTIME_MODEL: options.runtimeModel ?? 'node',
      IMAGEGATE_CLUSTER_CHECK_LAYOUT: options.checkLayout ?? '',
      IMAGEGATE_CLUSTER_CONTAINERD: String(containerd),
    },
  });
  if (up.code !== 0) {
    running.delete(dir);
    throw new Error(`cluster.sh up ${dir} failed (exit ${up.code}); logs in ${dir}/logs:\n${up.stderr}`);
  }
  const env = parseEnv(await readFile(path.join(dir, 'cluster.env'), 'utf8'));
  const kubectlEnv = (opts: RunOptions): RunOptions => ({ ...opts, env: { ...opts.env, KUBECONFIG: env.KUBECONFIG, KUBECACHEDIR: env.KUBECACHEDIR } });
  const kubectl = (args: readonly string[], opts: RunOptions = {}): Promise<RunResult> => run(env.KUBECTL, args, kubectlEnv(opts));
  const kubectlOk = (args: readonly string[], opts: RunOptions = {}): Promise<RunResult> => runOk(env.KUBECTL, args, kubectlEnv(opts));
  const logTail = async (name: string): Promise<string> => {
    const text = await readFile(path.join(dir, 'logs', `${name}.log`), 'utf8').catch(() => '');
    return text.split('\n').slice(-25).join('\n');
  };

  const getPod = async (namespace: string, name: string): Promise<{ metadata: Record<string, unknown>; spec: Record<string, any>; status?: PodStatus }> =>
    JSON.parse((await kubectlOk(['-n', namespace, 'get', 'pod', name, '-o', 'json'])).stdout) as { metadata: Record<string, unknown>; spec: Record<string, any>; status?: PodStatus };
  const podOutcome = async (namespace: string, name: string): Promise<PodOutcome> => {
    const deadline = Date.now() + POD_TIMEOUT_MS;
    for (;;) {
      const status = (await getPod(namespace, name)).status ?? {};
      if (status.phase === 'Succeeded' || status.phase === 'Failed') return { phase: status.phase, status };
      // A pull or create error will not go away by itself (the kubelet only backs off): report it now.
      const stuck = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])].find((c) => {
        const reason = c.state?.waiting?.reason;
        return reason !== undefined && STUCK_REASONS.has(reason);
      });
      if (stuck) return { stuck: { container: stuck.name, reason: stuck.state!.waiting!.reason!, message: stuck.state!.waiting!.message ?? '' }, status };
      if (Date.now() > deadline) throw new Error(`pod ${namespace}/${name} is still ${status.phase ?? '(unknown)'} after ${POD_TIMEOUT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  return {
    dir,
    env,
    containerd,
    ctr: containerd === 1 ? 'ctr' : path.join(execFileSync(BUILD_CONTAINERD2_SH, ['--path'], { encoding: 'utf8' }).trim(), 'ctr'),
    showfiles: path.join(binDir(), 'showfiles'),
    kubectl,
    kubectlOk,
    apply: (...objects) => kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') }),
    podFinished: async (namespace, name) => {
      const outcome = await podOutcome(namespace, name);
      if ('stuck' in outcome) throw new Error(`pod ${namespace}/${name}: ${outcome.stuck.reason}: ${outcome.stuck.message}`);
      return outcome.phase;
    },
    podOutcome,
    getPod,
    diagnose: async (namespace, name) => {
      const describe = await kubectl(['-n', namespace, 'describe', 'pod', name]);
      return [
        `--- kubectl describe pod ${namespace}/${name} ---`,
        describe.stdout + describe.stderr,
        '--- containerd (end) ---',
        await logTail('containerd'),
        '--- kubelet (end) ---',
        await logTail('kubelet'),
      ].join('\n');
    },
    down,
  };
}

function parseEnv(text: string): ClusterEnv {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  return env as unknown as ClusterEnv;
}
