#!/usr/bin/env node
/**
 * The `imagegate` command's entry point: checks the Node.js version, then loads the CLI.
 *
 * Static imports are linked and evaluated before a module's body runs, so a check placed after them comes too late:
 * on Node 20 undici dies while loading (it binds zlib's zstd, which Node 20 lacks) with a stack trace that names
 * neither the cause nor the fix. This file therefore imports only modules that load on any Node (Node's own, the
 * version check, the exit codes) and imports the CLI dynamically once the version is known to be good.
 */
import { fileURLToPath } from 'node:url';
import { EXIT_CODES } from '../src/errors.js';
import { node24Command, nodeVersionProblem } from './node-version.js';

// dist/cli/imagegate.js -> scripts/node24.sh of the same checkout.
const node24Script = fileURLToPath(new URL('../../scripts/node24.sh', import.meta.url));
const problem = nodeVersionProblem(process.versions.node, process.execPath, node24Command(node24Script, process.cwd()));
if (problem !== undefined) {
  process.stderr.write(`${problem}\n`);
  // 2, the usage class: nothing ran, and the fix is in how imagegate is started, not in the images or keys.
  process.exitCode = EXIT_CODES.USAGE;
} else {
  const { runCli } = await import('./program.js');
  await runCli(process.argv);
}
