/**
 * The Node.js version check the `imagegate` entry point runs before it loads anything else. Kept free of imports
 * beyond Node's own modules, so it runs (and explains itself) on the old Node it is there to refuse.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The oldest Node.js the CLI runs on: package.json "engines" (undici needs zlib's zstd, new in 22.15/23.8). */
export const MIN_NODE_VERSION = '22.19.0';

function parseVersion(version: string): [number, number, number] {
  const [major = 0, minor = 0, patch = 0] = version.replace(/^v/, '').split('.').map((part) => Number.parseInt(part, 10) || 0);
  return [major, minor, patch];
}

/** True when `found` (e.g. "20.20.2" or "v24.21.0") is at least `needed`. */
export function isNodeVersionAtLeast(found: string, needed: string = MIN_NODE_VERSION): boolean {
  const a = parseVersion(found);
  const b = parseVersion(needed);
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/**
 * The command that puts Node 24 on PATH, naming scripts/node24.sh as the user can type it from where they are
 * (relative inside the checkout, absolute outside); undefined where the script is not shipped (npm package, image).
 */
export function node24Command(node24Script: string, cwd: string): string | undefined {
  if (!existsSync(node24Script)) return undefined;
  const relative = path.relative(cwd, node24Script);
  const shown = relative.startsWith('..') || path.isAbsolute(relative) ? node24Script : relative;
  return `export PATH="$(${shown}):$PATH"`;
}

/** The one line to print when this Node is too old, or undefined when it is new enough. */
export function nodeVersionProblem(found: string, execPath: string, fix: string | undefined): string | undefined {
  if (isNodeVersionAtLeast(found)) return undefined;
  const remedy = fix ? `get Node 24 with: ${fix}` : 'install Node.js 24 LTS (https://nodejs.org/) and run imagegate with it';
  return `imagegate: needs Node.js >= ${MIN_NODE_VERSION}, found ${found.replace(/^v/, '')} (${execPath}); ${remedy}`;
}
