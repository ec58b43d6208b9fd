/**
 * External tools for integration tests: finding them (skip locally, fail under CI), running them, and the
 * throwaway files they need (key pairs, temporary directories).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

// ---------------------------------------------------------------------------------------------------------------
// Finding tools

/** What to tell someone whose machine lacks a tool; the project's machines are Debian. */
const INSTALL_HINTS: Record<string, string> = {
  skopeo: 'apt-get install skopeo',
  umoci: 'apt-get install umoci',
  'docker-registry': 'apt-get install docker-registry',
  htpasswd: 'apt-get install apache2-utils',
  openssl: 'apt-get install openssl',
  time: 'apt-get install time',
  containerd: 'apt-get install containerd',
  buildah: 'apt-get install buildah',
};

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Absolute path of `name` on PATH (or `name` itself when it is a path), or undefined. */
export function findOnPath(name: string): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? path.resolve(name) : undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The path of tool `name`, or undefined so the caller can `describe.skipIf(!tool)`. Under CI (`CI=true`) a missing
 * tool throws instead: a suite that silently skips there would report green without having tested anything.
 */
export function requireTool(name: string): string | undefined {
  const found = findOnPath(name);
  if (found === undefined && process.env.CI === 'true') {
    const hint = INSTALL_HINTS[name] ?? `install ${name} and put it on PATH`;
    throw new Error(`${name} is required for the integration tests under CI=true but is not on PATH: ${hint}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------------------------
// Running tools

export interface RunOptions {
  /** Added to (and overriding) this process's environment; a variable set to undefined is removed. */
  env?: Record<string, string | undefined>;
  /** Written to the child's standard input, which is then closed. Without it stdin is empty. */
  input?: string | Buffer;
  cwd?: string;
}

export interface RunResult {
  /** Exit code, or null when the child was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function childEnv(extra: RunOptions['env']): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Runs `cmd` with `args` (no shell, so nothing is re-parsed) and collects its output. Never throws on exit code. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: childEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A child that exits without reading its input makes our write fail with EPIPE; its exit status says more.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input);
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      }),
    );
  });
}

/** Like `run`, but a non-zero exit throws an Error that carries the command line, stdout and stderr. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) {
    const status = result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new Error(
      `${[cmd, ...args].join(' ')} ${status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`,
    );
  }
  return result;
}

export interface SkopeoOptions extends RunOptions {
  /** Throw on a non-zero exit (the default); false returns the result so tests can assert on failures. */
  check?: boolean;
}

/**
 * Runs skopeo with `--insecure-policy` first: the tests only use local transports, and without it skopeo insists
 * on reading /etc/containers/policy.json, which a fresh machine may not have. No `--tmpdir` is passed: the OCI
 * layout destination stages blobs inside the destination directory itself.
 */
export function skopeo(args: readonly string[], opts: SkopeoOptions = {}): Promise<RunResult> {
  const bin = findOnPath('skopeo') ?? 'skopeo';
  const fullArgs = ['--insecure-policy', ...args];
  return opts.check === false ? run(bin, fullArgs, opts) : runOk(bin, fullArgs, opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Key pairs

export type KeyKind = 'rsa' | 'ec-p256' | 'ec-p384' | 'ec-p521';

export interface KeyPairFiles {
  name: string;
  kind: KeyKind;
  /** PKCS#8 PEM (`BEGIN PRIVATE KEY`). */
  privateKeyPath: string;
  /** SPKI PEM (`BEGIN PUBLIC KEY`). */
  publicKeyPath: string;
}

const CURVES: Record<Exclude<KeyKind, 'rsa'>, string> = {
  'ec-p256': 'P-256',
  'ec-p384': 'P-384',
  'ec-p521': 'P-521',
};

/**
 * Writes `NAME.pem` (private) and `NAME.pub.pem` (public) into `dir`; NAME defaults to the kind. These are the
 * formats skopeo 1.9.3 (ocicrypt 1.0.3) accepts: PKCS#8 PEM private keys (not SEC1 `EC PRIVATE KEY`) and SPKI
 * PEM public keys (not PKCS#1 `RSA PUBLIC KEY`).
 */
export async function makeKeyPair(dir: string, kind: KeyKind, name: string = kind): Promise<KeyPairFiles> {
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const { privateKey, publicKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding, publicKeyEncoding })
      : generateKeyPairSync('ec', { namedCurve: CURVES[kind], privateKeyEncoding, publicKeyEncoding });
  await mkdir(dir, { recursive: true });
  const privateKeyPath = path.join(dir, `${name}.pem`);
  const publicKeyPath = path.join(dir, `${name}.pub.pem`);
  await writeFile(privateKeyPath, privateKey, { mode: 0o600 });
  await writeFile(publicKeyPath, publicKey);
  return { name, kind, privateKeyPath, publicKeyPath };
}

// ---------------------------------------------------------------------------------------------------------------
// Temporary directories

export interface TempDir {
  path: string;
  /** Removes the directory, unless IMAGEGATE_KEEP_TEMP=1 asks to keep it for a post-mortem. */
  cleanup(): Promise<void>;
}

/** A fresh directory under the system temp dir; the caller removes it (e.g. in `afterAll`). */
export async function tempDir(prefix: string): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `imagegate-${prefix}`));
  return {
    path: dir,
    cleanup: async () => {
      if (process.env.IMAGEGATE_KEEP_TEMP === '1') return;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Like `tempDir`, but removed when the current test finishes; call it inside a test only. */
export async function testTempDir(prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  onTestFinished(() => dir.cleanup());
  return dir.path;
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

/** Servers this process started and that still run, killed on exit whatever happened to the tests. */
const liveServers = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveServers) child.kill('SIGKILL');
});

/**
 * Starts a test server (docker-registry, OpenBao) that cannot outlive the tests: it is killed when this process
 * exits, and where util-linux's `setpriv` exists it gets a parent-death signal, so it dies with the test worker
 * even when the worker itself is killed.
 */
export function spawnServer(bin: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  const setpriv = findOnPath('setpriv');
  const [cmd, cmdArgs] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, [...args]];
  const child = spawn(cmd, cmdArgs, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  liveServers.add(child);
  child.on('exit', () => liveServers.delete(child));
  return child;
}
