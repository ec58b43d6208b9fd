/**
 * containerd 2.x for integration tests, without a kubelet: test/infra/build-containerd2.sh's containerd (built from
 * its Go module), started with its own root, state, sockets and runc state under a temp dir, its CRI plugin serving
 * `crictl` on that socket. imgcrypt's ctd-decoder and crictl come from test/infra/build-kubernetes.sh, runc from
 * Debian. The daemon reads a base configuration of ours (paths, plain-HTTP registries) that `imports` the caller's
 * drop-in, the way a node with `imports = ['/etc/containerd/conf.d/*.toml']` reads deploy/runtime's config-v3.toml.
 *
 * As with the other built tools (built-tools.ts), a local run never builds anything: without the builds, or without
 * root, the suite skips with the reason on stderr. Under CI=true a missing build is built here (.ci/run has normally
 * built it already) and every other reason is a failure.
 *
 * Lifecycle: the caller stops it (`await daemon.stop()`); inside a test it is stopped when that test finishes. The
 * daemon gets a parent-death signal (spawnServer), and `stop` unmounts whatever containerd left mounted under its
 * directory before removing it, and removes the shim socket directory if it created it (SHIM_SOCKET_DIRS).
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { findOpenBao } from './openbao.js';
import { terminate } from './registry-server.js';
import { findOnPath, run, runOk, spawnServer, tempDir, type RunResult } from './tools.js';

const INFRA = fileURLToPath(new URL('../infra/', import.meta.url));
const BUILD_CONTAINERD2 = path.join(INFRA, 'build-containerd2.sh');
const BUILD_KUBERNETES = path.join(INFRA, 'build-kubernetes.sh');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 256 * 1024;
/**
 * The one fixed host path containerd 2 uses whatever its configuration: run as root, each shim's socket is
 * /run/containerd/s/<sha256 of socket, namespace, id> (containerd's core/runtime/v2/shim_unix.go, pkg/shim). What of
 * it did not exist is removed again when empty, so a test leaves the host as it found it (cluster.sh's `down` too).
 */
const SHIM_SOCKET_DIRS = ['/run/containerd', '/run/containerd/s'];

/** Where the pieces are: containerd 2's bin directory and the one holding ctd-decoder and crictl. */
export interface Containerd2Tools {
  /** containerd, ctr, containerd-shim-runc-v2 (v2.4.2) */
  bin: string;
  /** ctd-decoder, crictl, showfiles (test/infra/build-kubernetes.sh) */
  kubernetesBin: string;
  runc: string;
}

function binDir(script: string): string {
  return execFileSync(script, ['--path'], { encoding: 'utf8' }).trim();
}

function builtIn(dir: string, files: readonly string[]): boolean {
  return files.every((file) => existsSync(path.join(dir, file)));
}

const CONTAINERD2_FILES = ['containerd', 'ctr', 'containerd-shim-runc-v2'];
const KUBERNETES_FILES = ['ctd-decoder', 'crictl', 'showfiles'];

/** Builds with `script` under CI=true; throws when that fails. */
function buildForCi(script: string, files: readonly string[]): void {
  const build = spawnSync(script, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (build.status !== 0 || !builtIn(binDir(script), files)) {
    const how = build.error?.message ?? (build.signal ? `killed by ${build.signal}` : `exit ${build.status}`);
    throw new Error(`containerd 2 is required under CI=true, but ${script} failed (${how})`);
  }
}

/** Why containerd 2 cannot run here, or undefined when it can (and the builds are there, or were just built). */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root (containerd mounts overlay snapshots, runc)';
  if (!findOnPath('runc') && !existsSync('/usr/sbin/runc')) return 'runc is missing (Debian: apt-get install runc)';
  if (!findOpenBao()) return 'OpenBao is not built (test/infra/build-openbao.sh)';
  for (const [script, files] of [[BUILD_CONTAINERD2, CONTAINERD2_FILES], [BUILD_KUBERNETES, KUBERNETES_FILES]] as const) {
    if (builtIn(binDir(script), files)) continue;
    if (process.env.CI !== 'true') return `${files.join(', ')} not built; build them with ${script}`;
    buildForCi(script, files);
  }
  return undefined;
}

let checked: { reason: string | undefined } | undefined;

/**
 * Whether containerd 2 can run here: undefined when it can, else the reason (also printed once on stderr), so a
 * suite can `describe.skipIf(containerd2Unavailable())`. Under CI=true every reason is a failure (it throws).
 */
export function containerd2Unavailable(): string | undefined {
  if (checked === undefined) {
    const reason = unavailable();
    if (reason !== undefined && process.env.CI === 'true') {
      throw new Error(`containerd 2 is required for the integration tests under CI=true, but ${reason}`);
    }
    if (reason !== undefined) process.stderr.write(`containerd 2: skipping: ${reason}\n`);
    checked = { reason };
  }
  return checked.reason;
}

/** The tools' paths; call `containerd2Unavailable()` first. */
export function containerd2Tools(): Containerd2Tools {
  return {
    bin: binDir(BUILD_CONTAINERD2),
    kubernetesBin: binDir(BUILD_KUBERNETES),
    runc: findOnPath('runc') ?? '/usr/sbin/runc',
  };
}

export interface Containerd2Options {
  /**
   * The drop-in the base configuration imports (TOML, config version 3), e.g. deploy/runtime's config-v3.toml with
   * its /etc/containerd/ paths rewritten. Written to DIR/conf.d/imagegate.toml.
   */
  dropIn: string;
  /** host:port of registries reached over plain HTTP (a certs.d/HOST:PORT/hosts.toml each) */
  plainHttpRegistries?: readonly string[];
}

export interface Containerd2 {
  dir: string;
  /** unix socket path of containerd's gRPC API (CRI included) */
  socket: string;
  /** the drop-in's path, as containerd read it */
  dropInFile: string;
  tools: Containerd2Tools;
  /** `ctr --address SOCKET -n k8s.io ARGS` (the CRI's namespace); never throws on exit code */
  ctr(args: readonly string[]): Promise<RunResult>;
  /** `crictl` against this containerd's CRI; never throws on exit code */
  crictl(args: readonly string[]): Promise<RunResult>;
  /** `containerd config dump` of the configuration this daemon was started with */
  configDump(): Promise<string>;
  /** the daemon's output so far */
  log(): string;
  stop(): Promise<void>;
}

function tomlString(text: string): string {
  return JSON.stringify(text);
}

/**
 * The base configuration: everything containerd would otherwise put at a fixed host path goes under `dir`. Host
 * services the tests do not use are off: NRI (its socket is /var/run/nri/nri.sock, shared by every containerd).
 */
function baseConfig(dir: string, socket: string, dropInFile: string): string {
  return [
    'version = 3',
    `root = ${tomlString(path.join(dir, 'root'))}`,
    `state = ${tomlString(path.join(dir, 'state'))}`,
    `imports = [${tomlString(dropInFile)}]`,
    '[grpc]',
    `  address = ${tomlString(socket)}`,
    '[ttrpc]',
    `  address = ${tomlString(`${socket}.ttrpc`)}`,
    "[plugins.'io.containerd.internal.v1.opt']",
    `  path = ${tomlString(path.join(dir, 'opt'))}`,
    "[plugins.'io.containerd.nri.v1.nri']",
    '  disable = true',
    "[plugins.'io.containerd.cri.v1.images'.registry]",
    `  config_path = ${tomlString(path.join(dir, 'certs.d'))}`,
    "[plugins.'io.containerd.cri.v1.runtime']",
    // Without it runc cannot start containers here (see the cluster's containerd-config.toml).
    '  restrict_oom_score_adj = true',
    '  netns_mounts_under_state_dir = true',
    "[plugins.'io.containerd.cri.v1.runtime'.cni]",
    `  conf_dir = ${tomlString(path.join(dir, 'cni'))}`,
    '',
  ].join('\n');
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo, whose field 5 is the mount point). */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points = lines
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined)
    .map((point) => point.replace(/\\040/g, ' '))
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
  return points.sort((a, b) => b.length - a.length);
}

/** Starts containerd 2 under a fresh temp dir. Call `containerd2Unavailable()` first. */
export async function startContainerd2(options: Containerd2Options): Promise<Containerd2> {
  const tools = containerd2Tools();
  const work = await tempDir('containerd2-');
  const dir = work.path;
  const socket = path.join(dir, 'containerd.sock');
  const dropInFile = path.join(dir, 'conf.d', 'imagegate.toml');
  const configFile = path.join(dir, 'config.toml');
  await mkdir(path.dirname(dropInFile), { recursive: true });
  await mkdir(path.join(dir, 'cni'));
  await writeFile(dropInFile, options.dropIn);
  await writeFile(configFile, baseConfig(dir, socket, dropInFile));
  for (const host of options.plainHttpRegistries ?? []) {
    await mkdir(path.join(dir, 'certs.d', host), { recursive: true });
    const hosts = `server = "http://${host}"\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`;
    await writeFile(path.join(dir, 'certs.d', host, 'hosts.toml'), hosts);
  }
  // crictl reads /etc/crictl.yaml unless told otherwise; an empty file of our own keeps the host's out.
  const crictlConfig = path.join(dir, 'crictl.yaml');
  await writeFile(crictlConfig, '');

  const hostDirsCreated = SHIM_SOCKET_DIRS.filter((dir) => !existsSync(dir)).reverse();
  // Only what containerd needs: its shim, ctd-decoder (named without a path, as the shipped config does) and runc
  // come from PATH, ours first so that Debian's containerd 1.6 shim is never picked.
  const env: NodeJS.ProcessEnv = {
    HOME: dir,
    PATH: [tools.bin, tools.kubernetesBin, path.dirname(tools.runc), '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].join(':'),
  };
  let logText = '';
  const append = (chunk: Buffer): void => {
    logText += chunk.toString('utf8');
    if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
  };
  const child: ChildProcess = spawnServer(path.join(tools.bin, 'containerd'), ['--config', configFile], { env, cwd: dir });
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);

  const ctrPath = path.join(tools.bin, 'ctr');
  const ctr = (args: readonly string[]): Promise<RunResult> => run(ctrPath, ['--address', socket, '-n', 'k8s.io', ...args]);
  const crictl = (args: readonly string[]): Promise<RunResult> =>
    run(path.join(tools.kubernetesBin, 'crictl'), [
      '--config', crictlConfig,
      '--runtime-endpoint', `unix://${socket}`,
      '--image-endpoint', `unix://${socket}`,
      // The first pull starts `imagegate keyprovider` (Node) once per layer: more than crictl's default 2 s.
      '--timeout', '60s',
      ...args,
    ]);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await terminate(child, STOP_TIMEOUT_MS);
      // Snapshot mounts left by an interrupted test: removing through a live overlay mount would fail or worse.
      for (const point of mountsUnder(dir)) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
      // rmdir, never a recursive removal: another containerd (a test cluster) may have put its shims' sockets there.
      for (const hostDir of hostDirsCreated) await rmdir(hostDir).catch(() => {});
    } finally {
      await work.cleanup();
    }
  };

  const daemon: Containerd2 = {
    dir,
    socket,
    dropInFile,
    tools,
    ctr,
    crictl,
    configDump: async () =>
      (await runOk(path.join(tools.bin, 'containerd'), ['--config', configFile, 'config', 'dump'], { env })).stdout,
    log: () => logText,
    stop,
  };
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while ((await run(ctrPath, ['--address', socket, 'version'])).code !== 0) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`containerd 2 exited before it answered on ${socket}\n--- log ---\n${logText}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`containerd 2 did not answer on ${socket} within ${READY_TIMEOUT_MS / 1000} s\n--- log ---\n${logText}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    try {
      onTestFinished(() => stop());
    } catch {
      // Not inside a test (beforeAll): the caller stops it.
    }
    return daemon;
  } catch (err) {
    await stop();
    throw err;
  }
}
