/**
 * A vitest reporter that ends `npm test` with how many tests were skipped and the command that prepares the tools
 * they need. Tests skip locally when a tool is missing (see requireTool in tools.ts); vitest reports that per file,
 * where it scrolls away, so a run that skipped a hundred tests could look complete.
 */
import type { Reporter, TestModule, Vitest } from 'vitest/node';

/** Builds and installs everything the tests need (Go is checked first), as .ci/run does. */
export const PREPARE_TESTS_COMMAND = 'scripts/prepare-tests.sh';
/** Files listed by name; beyond that, a count. */
const MAX_FILES_LISTED = 10;

export interface SkippedInFile {
  /** The test file, relative to the repository. */
  file: string;
  skipped: number;
}

/** The summary's lines, or undefined when nothing was skipped. Files with the most skipped tests come first. */
export function formatSkippedSummary(files: readonly SkippedInFile[], totalTests: number): string | undefined {
  const withSkips = files.filter((f) => f.skipped > 0).sort((a, b) => b.skipped - a.skipped || a.file.localeCompare(b.file));
  const skipped = withSkips.reduce((sum, f) => sum + f.skipped, 0);
  if (skipped === 0) return undefined;
  const tests = (n: number): string => `${n} test${n === 1 ? '' : 's'}`;
  const lines = [`${tests(skipped)} of ${totalTests} skipped, in ${withSkips.length} file${withSkips.length === 1 ? '' : 's'}:`];
  for (const f of withSkips.slice(0, MAX_FILES_LISTED)) lines.push(`  ${f.file}: ${f.skipped}`);
  if (withSkips.length > MAX_FILES_LISTED) lines.push(`  and ${withSkips.length - MAX_FILES_LISTED} more files`);
  lines.push(
    'Tests skip when a tool they need is missing (OpenBao, skopeo 1.19, helm and the other deploy tools are built',
    `from Go modules). Prepare them all, once, with: ${PREPARE_TESTS_COMMAND}`,
    '(CI=true npm test fails on a missing tool instead of skipping.)',
  );
  return lines.join('\n');
}

/** Skipped and total tests per file of a finished run. */
export function skippedPerFile(modules: readonly TestModule[]): { files: SkippedInFile[]; total: number } {
  let total = 0;
  const files = modules.map((m) => {
    let skipped = 0;
    for (const test of m.children.allTests()) {
      total++;
      if (test.result().state === 'skipped') skipped++;
    }
    return { file: m.relativeModuleId, skipped };
  });
  return { files, total };
}

export default class SkippedSummaryReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const { files, total } = skippedPerFile(modules);
    const summary = formatSkippedSummary(files, total);
    if (summary === undefined) return;
    const log = this.vitest?.logger;
    if (log) log.log(`\n${summary}`);
    else process.stdout.write(`\n${summary}\n`);
  }
}
