/**
 * The README's "Try it" walk-through, run as written: its shell block is taken from between the try-it markers and
 * run in bash against a real docker-registry. Only what cannot be literal in a test is rewritten, visibly: the
 * fixed ports become free ones, `npx imagegate` becomes this checkout's CLI, and the one-time `sudo apt-get` line
 * goes (CI installs the registry).
 */
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI } from '../support/imagegate.js';
import { freePort } from '../support/registry-server.js';
import { requireTool, run, testTempDir } from '../support/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ready = Boolean(requireTool('docker-registry') && requireTool('openssl'));

function replaceCounted(text: string, from: string, to: string, min = 1): string {
  const count = text.split(from).length - 1;
  expect(count, `"${from}" in the walk-through`).toBeGreaterThanOrEqual(min);
  return text.split(from).join(to);
}

async function walkThrough(): Promise<string> {
  const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
  const section = /<!-- try-it:begin -->\n```sh\n([\s\S]*?)```\n<!-- try-it:end -->/.exec(readme);
  expect(section, 'the README has a ```sh block between <!-- try-it:begin --> and <!-- try-it:end -->').not.toBeNull();
  return section![1]!;
}

describe.skipIf(!ready)('README: Try it', () => {
  it('reaches an encrypted image in a local registry and a webhook denial for the plaintext pod', async () => {
    const work = await testTempDir('try-it-');
    const [registryPort, webhookPort] = [await freePort(), await freePort()];
    const registry = (text: string): string => replaceCounted(text, '127.0.0.1:5000', `127.0.0.1:${registryPort}`);

    let script = await walkThrough();
    const [first, ...rest] = script.split('\n');
    expect(first).toMatch(/^sudo apt-get install -y docker-registry/);
    script = rest.join('\n');
    script = replaceCounted(script, 'scripts/local-registry.sh start', `scripts/local-registry.sh start ${registryPort}`);
    script = replaceCounted(script, 'npx imagegate ', 'imagegate ', 5);
    script = replaceCounted(registry(script), '127.0.0.1:8443', `127.0.0.1:${webhookPort}`);

    // The files the walk-through names, from this checkout (ports rewritten the same way).
    await mkdir(path.join(work, 'docs/try-it'), { recursive: true });
    for (const f of ['policy.yaml', 'pods.yaml']) {
      await writeFile(path.join(work, 'docs/try-it', f), registry(await readFile(path.join(REPO, 'docs/try-it', f), 'utf8')));
    }
    await symlink(path.join(REPO, 'scripts'), path.join(work, 'scripts'));
    const bin = path.join(work, 'bin');
    await mkdir(bin);
    await writeFile(path.join(bin, 'imagegate'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });

    // If the walk-through stops half-way, its registry and webhook must not outlive the test.
    const guarded = `trap 'kill $(jobs -p) 2>/dev/null; scripts/local-registry.sh stop' EXIT\n${script}`;
    const res = await run('bash', ['-c', guarded], { cwd: work, env: { PATH: `${bin}:${process.env.PATH}` } });
    const out = res.stdout;
    expect(res.code, `${out}\n${res.stderr}`).toBe(0);
    expect(out).toMatch(/image sha256:[0-9a-f]{64}: 2 of 2 layer\(s\) encrypted/);
    expect(out).toContain('allowed Pod shop/app-encrypted');
    expect(out).toMatch(new RegExp(`denied  Pod shop/app-plaintext: imagegate denied this pod:\\n  container app \\(127\\.0\\.0\\.1:${registryPort}/shop/app:plain\\): no layer is encrypted`));
    expect(out).toContain('[rule encryption-required]');
    expect(out).toContain('exit code 10');
  }, 150_000);
});
