/**
 * `imagegate` on a Node.js older than package.json's "engines": one line that names the version needed, the version
 * found and the command that fetches Node 24, exit code 2, instead of undici's stack trace from loading the CLI.
 * Runs the built entry point (dist/cli/imagegate.js) with the machine's old Node (Debian's nodejs, which .ci/run
 * installs together with npm; IMAGEGATE_OLD_NODE names another).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isNodeVersionAtLeast, MIN_NODE_VERSION } from '../../cli/node-version.js';
import { CLI } from '../support/imagegate.js';
import { findOnPath, run } from '../support/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** An installed Node.js older than MIN_NODE_VERSION, with its version, or why there is none. */
function findOldNode(): { node: string; version: string } | { missing: string } {
  const node = findOnPath(process.env.IMAGEGATE_OLD_NODE ?? '/usr/bin/node');
  if (node === undefined) return { missing: 'no /usr/bin/node (apt-get install nodejs) and no IMAGEGATE_OLD_NODE' };
  const version = execFileSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  if (isNodeVersionAtLeast(version)) return { missing: `${node} is Node ${version}, not older than ${MIN_NODE_VERSION}` };
  return { node, version };
}

const old = findOldNode();
if ('missing' in old && process.env.CI === 'true') {
  throw new Error(`the Node version check needs an old Node.js under CI=true: ${old.missing}; set IMAGEGATE_OLD_NODE`);
}

describe('the Node.js version the CLI needs', () => {
  it('is the one package.json "engines" declares', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE_VERSION}`);
  });

  it('is the one scripts/node24.sh checks before it fetches Node 24', () => {
    const [major, minor] = MIN_NODE_VERSION.split('.');
    const script = readFileSync(path.join(REPO, 'scripts/node24.sh'), 'utf8');
    expect(script).toContain(`a>${major}||(a===${major}&&b>=${minor})`);
    expect(script).toContain(`>= ${major}.${minor}`);
  });
});

describe.skipIf('missing' in old)('imagegate on an old Node.js', () => {
  const { node, version } = old as { node: string; version: string };
  const expectedLine = (node24: string): string =>
    `imagegate: needs Node.js >= ${MIN_NODE_VERSION}, found ${version} (${node}); ` +
    `get Node 24 with: export PATH="$(${node24}):$PATH"\n`;

  it.each([
    [['--version']],
    [['encrypt', 'oci:a', 'oci:b', '-r', 'jwe:k.pem']],
    [['webhook', 'serve', '--policy', 'p.yaml']],
  ])('%j prints one line naming both versions and scripts/node24.sh, and exits 2', async (args) => {
    const res = await run(node, [CLI, ...args], { cwd: REPO });
    expect(res.stderr).toBe(expectedLine('scripts/node24.sh'));
    expect(res.stdout).toBe('');
    expect(res.code).toBe(2);
  });

  it('names scripts/node24.sh by its absolute path outside the checkout', async () => {
    // A new directory, not the temp directory itself: the checkout may live under it (a CI clone in /tmp).
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'imagegate-elsewhere-'));
    try {
      const res = await run(node, [CLI, '--version'], { cwd: elsewhere });
      expect(res.stderr).toBe(expectedLine(path.join(REPO, 'scripts/node24.sh')));
      expect(res.code).toBe(2);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('names a command that does give the CLI a Node it runs on', async () => {
    // The message's remedy, typed as printed, in a shell whose only Node is the old one.
    const shell = `export PATH="$(scripts/node24.sh):$PATH" && node dist/cli/imagegate.js --version`;
    const res = await run('bash', ['-c', shell], { cwd: REPO, env: { PATH: `${path.dirname(node)}:/usr/bin:/bin` } });
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(res.code).toBe(0);
  });
});
