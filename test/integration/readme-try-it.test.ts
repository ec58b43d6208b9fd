/**
 * The README's "Try it" walk-through, run as written, twice in a row in one shell (as someone who runs it again
 * would): its shell block is taken from between the try-it markers and run in bash against a real docker-registry.
 * Only what cannot be literal in a test is rewritten, visibly: the ports line gets free ports, and the one-time
 * `sudo apt-get` line goes (CI installs the registry). `npx imagegate` is a stand-in that, like npm exec, runs the
 * CLI as its child: so a walk-through that kills npx's process id instead of the webhook's leaves the webhook
 * holding its port, and the second run shows it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI } from '../support/imagegate.js';
import { freePort } from '../support/registry-server.js';
import { requireTool, run, testTempDir } from '../support/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const LOCAL_REGISTRY = path.join(REPO, 'scripts/local-registry.sh');
const ready = Boolean(requireTool('docker-registry') && requireTool('openssl'));
/** Far more than two runs take (about 15 s each); a run that waits for a port held by the first one never ends. */
const WALK_THROUGH_LIMIT_MS = 120_000;
const SECOND_RUN = '--- the walk-through, second run ---';

async function walkThrough(): Promise<string> {
  const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
  const section = /<!-- try-it:begin -->\n```sh\n([\s\S]*?)```\n<!-- try-it:end -->/.exec(readme);
  expect(section, 'the README has a ```sh block between <!-- try-it:begin --> and <!-- try-it:end -->').not.toBeNull();
  return section![1]!;
}

/** True when something accepts connections on 127.0.0.1:port. */
function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Runs a bash script in its own process group and, whatever happens, kills that group afterwards: a webhook or
 * registry the script failed to stop (the bug this test is about) must not outlive the test. After `limitMs` the
 * group is killed and the result says so.
 */
function runScriptGroup(script: string, cwd: string, env: NodeJS.ProcessEnv, limitMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }>((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, limitMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      killGroup();
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
  });
}

describe.skipIf(!ready)('README: Try it', () => {
  it('reaches an encrypted image in a local registry and a webhook denial for the plaintext pod, twice in a row', async () => {
    const work = await testTempDir('try-it-');
    const [registryPort, webhookPort] = [await freePort(), await freePort()];

    const lines = (await walkThrough()).split('\n');
    expect(lines[0]).toMatch(/^sudo apt-get install -y docker-registry/);
    const portsLine = lines.findIndex((l) => /^REGISTRY_PORT=5000 WEBHOOK_PORT=8443\b/.test(l));
    expect(portsLine, 'the walk-through sets REGISTRY_PORT=5000 WEBHOOK_PORT=8443 on one line').toBeGreaterThan(0);
    lines[portsLine] = `REGISTRY_PORT=${registryPort} WEBHOOK_PORT=${webhookPort}`;
    const section = lines.slice(1).join('\n');

    // What the walk-through uses from the checkout, in a scratch directory standing in for it.
    for (const entry of ['docs', 'scripts', 'dist']) await symlink(path.join(REPO, entry), path.join(work, entry));
    const bin = path.join(work, 'bin');
    await mkdir(bin);
    // `exit $?` after the command keeps sh from exec'ing node: the CLI stays a child, as under npm exec.
    await writeFile(
      path.join(bin, 'npx'),
      `#!/bin/sh\n[ "$1" = imagegate ] || { echo "test npx: only npx imagegate" >&2; exit 127; }\nshift\n` +
        `"${process.execPath}" "${CLI}" "$@"\nexit $?\n`,
      { mode: 0o755 },
    );

    const script = `${section}\necho '${SECOND_RUN}'\n${section}`;
    const env = { ...process.env, PATH: `${bin}:${path.dirname(process.execPath)}:${process.env.PATH}` };
    const res = await runScriptGroup(script, work, env, WALK_THROUGH_LIMIT_MS);
    const transcript = `${res.stdout}\n--- stderr ---\n${res.stderr}`;
    expect(res.timedOut, `the walk-through did not finish within ${WALK_THROUGH_LIMIT_MS} ms:\n${transcript}`).toBe(false);
    expect(res.code, transcript).toBe(0);

    const runs = res.stdout.split(`${SECOND_RUN}\n`);
    expect(runs, transcript).toHaveLength(2);
    for (const out of runs) {
      expect(out).toMatch(/image sha256:[0-9a-f]{64}: 2 of 2 layer\(s\) encrypted/);
      expect(out).toContain('allowed Pod shop/app-encrypted');
      expect(out).toMatch(new RegExp(`denied  Pod shop/app-plaintext: imagegate denied this pod:\\n  container app \\(127\\.0\\.0\\.1:${registryPort}/shop/app:plain\\): no layer is encrypted`));
      expect(out).toContain('[rule encryption-required]');
      expect(out).toContain('exit code 10');
    }
    expect(res.stderr).not.toContain('already in use');
    // Its own process group was still alive until now: free ports mean the walk-through stopped what it started.
    expect(await portAnswers(webhookPort), 'the webhook still listens after the walk-through').toBe(false);
    expect(await portAnswers(registryPort), 'the registry still listens after the walk-through').toBe(false);
  }, 180_000);

  it('scripts/local-registry.sh refuses a port another process holds instead of reporting success', async () => {
    const work = await testTempDir('local-registry-');
    const squatter = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as net.AddressInfo).port;
    try {
      const res = await run(LOCAL_REGISTRY, ['start', String(port)], { cwd: work });
      expect(res.stdout).toBe('');
      expect(res.stderr).toContain(`127.0.0.1:${port} is already in use by another process`);
      expect(res.code).toBe(1);
      // It left no registry of its own behind and recorded none.
      expect(existsSync(path.join(work, 'imagegate-try-it/registry/registry.pid'))).toBe(false);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('scripts/local-registry.sh start, stop, start again on the same port', async () => {
    const work = await testTempDir('local-registry-');
    const port = await freePort();
    try {
      for (let i = 0; i < 2; i++) {
        const started = await run(LOCAL_REGISTRY, ['start', String(port)], { cwd: work });
        expect(started.stdout, started.stderr).toBe(`127.0.0.1:${port}\n`);
        const catalog = await fetch(`http://127.0.0.1:${port}/v2/_catalog`);
        expect(catalog.status).toBe(200);
        expect((await run(LOCAL_REGISTRY, ['stop'], { cwd: work })).code).toBe(0);
        // `stop` returns once the port is free, so the next `start` cannot meet its own predecessor there.
        expect(await portAnswers(port)).toBe(false);
      }
    } finally {
      await run(LOCAL_REGISTRY, ['stop'], { cwd: work });
    }
  });
});
