/**
 * A containerd of the tests' own (Debian's containerd 1.6) for client tests such as imgcrypt's `ctr-enc`: its root,
 * state, gRPC and ttrpc sockets and `opt` directory under a temp directory, without the CRI plugin (nothing here runs
 * pods), so it neither touches /var/lib/containerd or /run/containerd nor meets the test cluster's containerd.
 *
 * It needs root (containerd's metadata and snapshot directories). Without root, locally, the suites skip with the
 * reason; under CI=true a missing containerd or a missing root is a failure, as `requireTool` makes a missing tool.
 *
 * Lifecycle as in registry-server.ts: `startPrivateContainerd` in `beforeAll`, `await containerd?.stop()` in
 * `afterAll`; it is started with a parent-death signal (spawnServer), so it dies with the test worker.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { exited, terminate } from './registry-server.js';
import { requireTool, spawnServer, tempDir, type TempDir } from './tools.js';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 64 * 1024;

export interface PrivateContainerd {
  /** the gRPC socket, for `ctr --address` (or CONTAINERD_ADDRESS) */
  address: string;
  /** the temp directory holding root, state and sockets */
  dir: string;
  /** containerd's log so far, for failure messages */
  log(): string;
  stop(): Promise<void>;
}

let checked: { reason: string | undefined } | undefined;

/**
 * Why a private containerd cannot run here, or undefined when it can; the reason is printed once on stderr, so a
 * suite can `describe.skipIf(privateContainerdUnavailable())`. Under CI=true every reason throws.
 */
export function privateContainerdUnavailable(): string | undefined {
  if (checked === undefined) {
    let reason: string | undefined;
    if (requireTool('containerd') === undefined) reason = 'containerd is not on PATH (Debian: apt-get install containerd)';
    else if (process.getuid?.() !== 0) reason = 'containerd needs root (its metadata store and snapshotters)';
    if (reason !== undefined && process.env.CI === 'true') {
      throw new Error(`a private containerd is required for the integration tests under CI=true, but ${reason}`);
    }
    if (reason !== undefined) process.stderr.write(`private containerd: ${reason}; skipping its tests\n`);
    checked = { reason };
  }
  return checked.reason;
}

/** config version 2, as Debian's containerd 1.6 reads it; paths are TOML basic strings (JSON escaping fits). */
function config(dir: string, address: string): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'version = 2',
    `root = ${q(path.join(dir, 'root'))}`,
    `state = ${q(path.join(dir, 'state'))}`,
    // No CRI: it would want CNI, a sandbox image and a network, and nothing here runs pods.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${q(address)}`,
    '[ttrpc]',
    `  address = ${q(`${address}.ttrpc`)}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(path.join(dir, 'opt'))}`,
    '',
  ].join('\n');
}

/** Whether something accepts connections on the unix socket. */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.createConnection(socket);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

export async function startPrivateContainerd(): Promise<PrivateContainerd | undefined> {
  if (privateContainerdUnavailable() !== undefined) return undefined;
  const bin = requireTool('containerd')!;
  const home: TempDir = await tempDir('containerd-');
  const dir = home.path;
  const address = path.join(dir, 'containerd.sock');
  const configFile = path.join(dir, 'config.toml');
  await writeFile(configFile, config(dir, address));

  let logText = '';
  const append = (text: string): void => {
    logText += text;
    if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
  };
  let spawnError: Error | undefined;
  const child: ChildProcess = spawnServer(bin, ['--config', configFile], { cwd: dir });
  child.on('error', (err) => {
    spawnError = err;
    append(`--- imagegate test: spawn failed: ${err.message} ---\n`);
  });
  child.stdout!.on('data', (chunk: Buffer) => append(chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => append(chunk.toString('utf8')));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await terminate(child, STOP_TIMEOUT_MS);
    await home.cleanup();
  };

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError || child.exitCode !== null || child.signalCode !== null) {
        await exited(child);
        const how = spawnError ? `spawn failed: ${spawnError.message}` : child.signalCode ? `killed by ${child.signalCode}` : `exit code ${child.exitCode}`;
        throw new Error(`private containerd exited before it answered on ${address} (${how})\n--- log ---\n${logText}`);
      }
      if (await answers(address)) break;
      if (Date.now() > deadline) {
        throw new Error(`private containerd did not answer on ${address} within ${READY_TIMEOUT_MS / 1000} s\n--- log ---\n${logText}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, dir, log: () => logText, stop };
}
