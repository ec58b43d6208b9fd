/**
 * Every shell block of README.md, docs/ and deploy/'s READMEs that is marked runnable (a fence opened with
 * "```sh runnable") is run as written: bash with errexit and pipefail, from a copy of the repository's root (the
 * deploy/, docs/ and scripts/ folders, so a block that writes files changes nothing here), with this checkout's CLI
 * on PATH as `imagegate` and a throwaway HOME. A command that fails fails the test, naming the file and line.
 *
 * Blocks that need what a test cannot have as written stay unmarked: a cluster (kubectl, helm install,
 * scripts/cluster-demo.sh), a network beyond 127.0.0.1 (registry.example, vault.example), secrets or placeholders
 * (`…`), `npm ci` (it would replace the shared node_modules) and the whole test suite or benchmarks. The README's
 * Try-it walk-through has its own test (readme-try-it.test.ts), which also starts its registry and webhook.
 */
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI } from '../support/imagegate.js';
import { requireTool, run, testTempDir } from '../support/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** What the blocks may use from the checkout, copied (not linked) into each block's directory. */
const COPIED = ['deploy', 'docs', 'scripts'];
/** Programs a block may call that are not on every machine: required under CI=true, else the block is skipped. */
const EXTERNAL_TOOLS = ['skopeo', 'umoci', 'openssl', 'docker-registry', 'htpasswd', 'bao'];
const BLOCK_TIMEOUT_MS = 120_000;

interface Block {
  /** e.g. README.md:524, the line of the opening fence. */
  where: string;
  script: string;
  tools: string[];
}

/** README.md, every Markdown file under docs/, and deploy/'s READMEs at any depth. */
function documents(): string[] {
  const found = ['README.md'];
  const walk = (dir: string, keep: (name: string) => boolean): void => {
    for (const entry of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel, keep);
      else if (keep(entry.name)) found.push(rel);
    }
  };
  walk('docs', (name) => name.endsWith('.md'));
  walk('deploy', (name) => name === 'README.md');
  return found.sort();
}

/**
 * The runnable blocks of one document, and the fences that look like a marker but are not exactly one (a typo in
 * "runnable", or a marked block indented inside a list, which this runner does not read), so a mistyped marker
 * cannot silently leave a block unrun.
 */
function blocksOf(file: string): { blocks: Block[]; malformed: string[] } {
  const lines = readFileSync(path.join(REPO, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  const malformed: string[] = [];
  let open: { line: number; runnable: boolean; body: string[] } | undefined;
  lines.forEach((text, i) => {
    const fence = /^(\s*)```(.*)$/.exec(text);
    if (open !== undefined) {
      if (fence !== null && fence[2]!.trim() === '') {
        if (open.runnable) {
          const script = open.body.join('\n');
          const tools = EXTERNAL_TOOLS.filter((t) => new RegExp(`(^|[\\s;|&(])${t}(\\s|$)`, 'm').test(script));
          blocks.push({ where: `${file}:${open.line}`, script, tools });
        }
        open = undefined;
      } else open.body.push(text);
      return;
    }
    if (fence === null) return;
    const info = fence[2]!.trim().split(/\s+/);
    const runnable = fence[1] === '' && (info[0] === 'sh' || info[0] === 'bash') && info[1] === 'runnable' && info.length === 2;
    if (!runnable && info.slice(1).some((word) => /^run/i.test(word))) malformed.push(`${file}:${i + 1}: ${text.trim()}`);
    if (!runnable && fence[1] !== '' && info[1] === 'runnable') malformed.push(`${file}:${i + 1}: an indented runnable block`);
    open = { line: i + 1, runnable, body: [] };
  });
  return { blocks, malformed };
}

const parsed = documents().map(blocksOf);
const blocks = parsed.flatMap((p) => p.blocks);

describe('shell blocks marked runnable in README.md, docs/ and deploy/*/README.md', () => {
  it('are marked exactly as "```sh runnable" (no typo, none indented), and there are some', () => {
    expect(parsed.flatMap((p) => p.malformed)).toEqual([]);
    expect(blocks.map((b) => b.where.split(':')[0])).toEqual(expect.arrayContaining(['README.md', 'deploy/vault/README.md']));
  });

  it.for(blocks)('$where runs as written', { timeout: BLOCK_TIMEOUT_MS }, async (block, ctx) => {
    const missing = block.tools.filter((t) => requireTool(t) === undefined);
    // Only outside CI (requireTool throws under CI=true): reported as skipped, not as passed.
    if (missing.length > 0) ctx.skip(`${block.where}: not run, ${missing.join(', ')} not on PATH`);
    expect(existsSync(CLI), `${CLI}: run npm run build first`).toBe(true);
    const work = await testTempDir('doc-block-');
    for (const dir of COPIED) await cp(path.join(REPO, dir), path.join(work, dir), { recursive: true });
    const bin = path.join(work, '.bin');
    const home = path.join(work, '.home');
    await mkdir(bin);
    await mkdir(home);
    await writeFile(path.join(bin, 'imagegate'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
    const before = await snapshot(work);

    const res = await run('bash', ['--noprofile', '--norc', '-e', '-o', 'pipefail', '-c', block.script], {
      cwd: work,
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: home, CI: undefined },
    });
    expect(res.code, `${block.where} failed (exit ${res.code}):\n${block.script}\n--- stdout\n${res.stdout}\n--- stderr\n${res.stderr}`).toBe(0);
    // The copied checkout files are the documentation's inputs; a block may add files beside them but a block that
    // rewrites one (deploy/vault/policies, say) must write what is committed.
    expect(await snapshot(work, Object.keys(before)), `${block.where} changed files of the checkout`).toEqual(before);
  });
});

/** The contents of the copied folders' files (or of `only`), by path relative to `root`. */
async function snapshot(root: string, only?: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) out[child] = await readFile(path.join(root, child), 'utf8');
    }
  };
  if (only !== undefined) {
    for (const rel of only) out[rel] = existsSync(path.join(root, rel)) ? await readFile(path.join(root, rel), 'utf8') : '(deleted)';
    return out;
  }
  for (const dir of COPIED) await walk(dir);
  return out;
}
