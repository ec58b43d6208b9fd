/**
 * A real OpenBao dev server for integration tests: `bao server -dev` on 127.0.0.1 (in-memory storage, unsealed, a
 * random root token) with the `transit` secrets engine and the `approle`, `jwt` and `kubernetes` auth methods
 * enabled at their default paths.
 *
 * The binary comes from test/infra/build-openbao.sh, which builds it from OpenBao's Go module into a cache outside
 * the repo. A local test run never builds it (a cold build takes minutes): without the cached binary the suites
 * skip, with a hint. Under CI=true a missing binary is built here (.ci/run has normally built it already) and a
 * failed build throws, as `requireTool` does for a missing tool.
 *
 * Lifecycle as in registry-server.ts: the caller stops the server (`beforeAll` / `afterAll`), or, started inside a
 * test, it is stopped when that test finishes; every server still running when this process exits gets SIGKILL, and
 * where util-linux's `setpriv` exists the server gets a parent-death signal, so it dies with the test worker.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { onTestFinished } from 'vitest';
import { exited, freePort, terminate } from './registry-server.js';
import { findBuiltTool } from './built-tools.js';
import { spawnServer, tempDir } from './tools.js';

export interface OpenBaoServer {
  /** e.g. "http://127.0.0.1:43123" */
  address: string;
  /** root token of the dev server */
  rootToken: string;
  /** PATH-independent absolute path of the bao binary */
  bin: string;
  stop(): Promise<void>;
  /** the server's output so far (stdout and stderr), for failure messages */
  log(): string;
  /**
   * An API call as root: `method` on `${address}/v1/${path}` with the root token and `body` as JSON. Returns the
   * parsed JSON answer (undefined for an empty one, e.g. 204); a non-2xx answer throws with the response text.
   */
  api(method: string, path: string, body?: unknown): Promise<any>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 64 * 1024;

/**
 * The absolute path of the cached `bao` binary, or undefined (after a hint on stderr) when it has not been built
 * and CI is not 'true', so callers can `describe.skipIf(!bin)`. Under CI=true it builds it, or throws.
 */
export function findOpenBao(): string | undefined {
  return findBuiltTool('build-openbao.sh', 'OpenBao');
}

export async function startOpenBao(): Promise<OpenBaoServer | undefined> {
  const bin = findOpenBao();
  if (!bin) return undefined;

  // HOME is a throwaway directory, so nothing (token helper files and the like) lands in the real one.
  const home = await tempDir('openbao-');
  const agent = new Agent({ keepAliveTimeout: 1_000 });
  const rootToken = `imagegate-${randomUUID()}`;
  let child: ChildProcess | undefined;
  let logText = '';
  const append = (text: string): void => {
    logText += text;
    if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      if (child) await terminate(child, STOP_TIMEOUT_MS);
    } finally {
      await agent.close();
      await home.cleanup();
    }
  };

  try {
    const port = await freePort();
    const address = `http://127.0.0.1:${port}`;
    const api = async (method: string, path: string, body?: unknown): Promise<any> => {
      const res = await request(`${address}/v1/${path}`, {
        method: method.toUpperCase(),
        headers: { 'x-vault-token': rootToken, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
        dispatcher: agent,
      });
      const text = await res.body.text();
      if (res.statusCode < 200 || res.statusCode > 299) {
        throw new Error(`openbao: ${method} /v1/${path} answered ${res.statusCode}: ${text}`);
      }
      return text.trim() === '' ? undefined : JSON.parse(text);
    };

    // No BAO_*/VAULT_* variables from our environment: they would point the CLI elsewhere or change the server.
    const env: NodeJS.ProcessEnv = { HOME: home.path };
    for (const [key, value] of Object.entries(process.env)) {
      if (key !== 'HOME' && !key.startsWith('BAO_') && !key.startsWith('VAULT_')) env[key] = value;
    }
    const args = [
      'server',
      '-dev',
      `-dev-root-token-id=${rootToken}`,
      `-dev-listen-address=127.0.0.1:${port}`,
      '-dev-no-store-token',
    ];
    let spawnError: Error | undefined;
    const proc = spawnServer(bin, args, { cwd: home.path, env });
    child = proc;
    proc.on('error', (err) => {
      spawnError = err;
      append(`--- imagegate test: spawn failed: ${err.message} ---\n`);
    });
    proc.stdout!.on('data', (chunk: Buffer) => append(chunk.toString('utf8')));
    proc.stderr!.on('data', (chunk: Buffer) => append(chunk.toString('utf8')));

    // Ready when sys/health answers 200: initialized, unsealed and active.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError || proc.exitCode !== null || proc.signalCode !== null) {
        await exited(proc);
        const how = spawnError
          ? `spawn failed: ${spawnError.message}`
          : proc.signalCode ? `killed by ${proc.signalCode}` : `exit code ${proc.exitCode}`;
        throw new Error(`openbao: bao server exited before it was ready (${how})\n--- log ---\n${logText}`);
      }
      if ((await health(address, agent)) === 200) break;
      if (Date.now() > deadline) {
        const what = `GET ${address}/v1/sys/health did not answer 200 within ${READY_TIMEOUT_MS / 1000} s`;
        throw new Error(`openbao: ${what}\n--- log ---\n${logText}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }

    await api('POST', 'sys/mounts/transit', { type: 'transit' });
    for (const method of ['approle', 'jwt', 'kubernetes']) await api('POST', `sys/auth/${method}`, { type: method });

    const server: OpenBaoServer = { address, rootToken, bin, stop, log: () => logText, api };
    try {
      onTestFinished(() => server.stop());
    } catch {
      // Not inside a test (e.g. in beforeAll): the caller stops it, as documented above.
    }
    return server;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The status of GET /v1/sys/health, or undefined when nothing answered (yet). */
async function health(address: string, agent: Agent): Promise<number | undefined> {
  try {
    const res = await request(`${address}/v1/sys/health`, {
      dispatcher: agent,
      headersTimeout: 2_000,
      bodyTimeout: 2_000,
    });
    await res.body.dump();
    return res.statusCode;
  } catch {
    return undefined;
  }
}
