/**
 * Tools the tests build from Go modules (test/infra/build-*.sh) into a cache outside the repo. A local test run never
 * builds them (a cold build takes minutes): without the cached binary the suites skip, with a hint. Under CI=true a
 * missing binary is built here (.ci/run has normally built it already) and a failed build throws, as `requireTool`
 * does for a missing tool.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findOnPath } from './tools.js';

const found = new Map<string, string | undefined>();

/** The absolute path of the binary `script` (under test/infra) builds, or undefined locally when not built yet. */
export function findBuiltTool(script: string, label: string): string | undefined {
  if (found.has(script)) return found.get(script);
  const file = fileURLToPath(new URL(`../infra/${script}`, import.meta.url));
  const where = spawnSync(file, ['--path'], { encoding: 'utf8' });
  if (where.status !== 0) throw new Error(`${file} --path failed (${where.error?.message ?? `exit ${where.status}`}): ${where.stderr}`);
  let bin = findOnPath(where.stdout.trim());
  if (bin === undefined && process.env.CI !== 'true') {
    process.stderr.write(`${label}: not built, skipping its tests; build it with ${file}\n`);
  } else if (bin === undefined) {
    // Progress goes straight to our stderr: a cold build takes minutes.
    const build = spawnSync(file, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    bin = build.status === 0 ? findOnPath(build.stdout.trim()) : undefined;
    if (bin === undefined) {
      const how = build.error?.message ?? (build.signal ? `killed by ${build.signal}` : `exit ${build.status}`);
      throw new Error(`${label} is required for the integration tests under CI=true, but ${file} failed (${how})`);
    }
  }
  found.set(script, bin);
  return bin;
}
