/**
 * Preparing a machine for `npm test`: scripts/check-go.sh, which scripts/prepare-tests.sh runs first, says how to
 * install Go when there is none or it is too old; and the summary that ends `npm test` counts the skipped tests
 * and names scripts/prepare-tests.sh.
 */
import { chmod, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatSkippedSummary, PREPARE_TESTS_COMMAND } from '../../support/skipped-summary-reporter.js';
import { findOnPath, run, testTempDir } from '../../support/tools.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHECK_GO = path.join(REPO, 'scripts/check-go.sh');

/** The highest `go` directive of test/infra/*\/go.mod, which the check requires. */
async function goVersionNeeded(): Promise<string> {
  const infra = path.join(REPO, 'test/infra');
  const versions: string[] = [];
  for (const entry of await readdir(infra, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const gomod = await readFile(path.join(infra, entry.name, 'go.mod'), 'utf8').catch(() => '');
    const m = /^go (\d+\.\d+(?:\.\d+)?)$/m.exec(gomod);
    if (m) versions.push(m[1]!);
  }
  const key = (v: string): number[] => v.split('.').map(Number);
  versions.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  });
  expect(versions.length, 'test/infra has Go modules').toBeGreaterThan(0);
  return versions.at(-1)!;
}

/** A PATH directory holding only (links to) the commands check-go.sh uses: no `go`. */
async function pathWithoutGo(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  for (const tool of ['bash', 'dirname', 'sed', 'sort', 'tail', 'head', 'uname', 'printf']) {
    const found = findOnPath(tool);
    if (found) await symlink(found, path.join(bin, tool));
  }
  return bin;
}

describe('scripts/check-go.sh', () => {
  it('without Go, says which version to install from where, and exits 1', async () => {
    const dir = await testTempDir('check-go-');
    // GOROOT names where Go lives; an empty one and a PATH without go leave no Go to find.
    const goroot = path.join(dir, 'goroot');
    await mkdir(goroot);
    const res = await run(CHECK_GO, [], { env: { PATH: await pathWithoutGo(dir), GOROOT: goroot } });
    const needed = await goVersionNeeded();
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(`no Go in $GOROOT/bin (${goroot}/bin) or PATH`);
    expect(res.stderr).toContain(`install Go >= ${needed} from https://go.dev/dl/`);
    expect(res.stderr).toMatch(new RegExp(`curl -fsSL https://go\\.dev/dl/go${needed.replace(/\./g, '\\.')}\\.linux-(amd64|arm64)\\.tar\\.gz \\| sudo tar -C /usr/local -xz`));
    expect(res.code).toBe(1);
  });

  it('with a Go older than test/infra needs, names both versions and exits 1', async () => {
    const dir = await testTempDir('check-go-');
    const goroot = path.join(dir, 'goroot');
    await mkdir(path.join(goroot, 'bin'), { recursive: true });
    const oldGo = path.join(goroot, 'bin/go');
    // What Debian 12's golang-go answers to `go env GOVERSION`.
    await writeFile(oldGo, '#!/bin/sh\necho go1.19.8\n');
    await chmod(oldGo, 0o755);
    const res = await run(CHECK_GO, [], { env: { PATH: await pathWithoutGo(dir), GOROOT: goroot } });
    expect(res.stderr).toContain(`${oldGo} is Go 1.19.8, older than the Go ${await goVersionNeeded()}`);
    expect(res.stdout).toBe('');
    expect(res.code).toBe(1);
  });

  it('with a new enough Go, prints its path', async () => {
    const dir = await testTempDir('check-go-');
    const goroot = path.join(dir, 'goroot');
    await mkdir(path.join(goroot, 'bin'), { recursive: true });
    const go = path.join(goroot, 'bin/go');
    await writeFile(go, `#!/bin/sh\necho go${await goVersionNeeded()}\n`);
    await chmod(go, 0o755);
    const res = await run(CHECK_GO, [], { env: { PATH: await pathWithoutGo(dir), GOROOT: goroot } });
    expect(res.stderr).toBe('');
    expect(res.stdout).toBe(`${go}\n`);
    expect(res.code).toBe(0);
  });

  it('is what scripts/prepare-tests.sh runs before anything else', async () => {
    const script = await readFile(path.join(REPO, 'scripts/prepare-tests.sh'), 'utf8');
    const commands = script.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
    const firstWork = commands.findIndex((l) => !/^(set |cd |say\(\))/.test(l));
    expect(commands[firstWork]).toBe('go="$(scripts/check-go.sh)"');
  });
});

describe('the skipped-tests summary at the end of npm test', () => {
  it('says nothing when nothing was skipped', () => {
    expect(formatSkippedSummary([{ file: 'test/unit/a.test.ts', skipped: 0 }], 12)).toBeUndefined();
    expect(formatSkippedSummary([], 0)).toBeUndefined();
  });

  it('counts the skipped tests, lists their files (most first) and names the command that prepares the tools', () => {
    const summary = formatSkippedSummary(
      [
        { file: 'test/integration/cli.test.ts', skipped: 0 },
        { file: 'test/integration/keyprovider.test.ts', skipped: 9 },
        { file: 'test/integration/vault.test.ts', skipped: 31 },
      ],
      400,
    );
    expect(summary).toBe(
      [
        '40 tests of 400 skipped, in 2 files:',
        '  test/integration/vault.test.ts: 31',
        '  test/integration/keyprovider.test.ts: 9',
        'Tests skip when a tool they need is missing (OpenBao, skopeo 1.19, helm and the other deploy tools are built',
        'from Go modules). Prepare them all, once, with: scripts/prepare-tests.sh',
        '(CI=true npm test fails on a missing tool instead of skipping.)',
      ].join('\n'),
    );
    expect(PREPARE_TESTS_COMMAND).toBe('scripts/prepare-tests.sh');
  });

  it('names at most ten files and counts the rest', () => {
    const files = Array.from({ length: 13 }, (_, i) => ({ file: `test/integration/t${String(i).padStart(2, '0')}.test.ts`, skipped: 1 }));
    const summary = formatSkippedSummary(files, 13)!;
    expect(summary.split('\n')[0]).toBe('13 tests of 13 skipped, in 13 files:');
    expect(summary).toContain('  test/integration/t09.test.ts: 1\n  and 3 more files\n');
    expect(summary).not.toContain('t10.test.ts');
  });

  it('names a command that exists and is executable', async () => {
    const res = await run('bash', ['-c', `test -x ${PREPARE_TESTS_COMMAND}`], { cwd: REPO });
    expect(res.code).toBe(0);
  });
});

