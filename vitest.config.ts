import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The JSON report lets .ci/run print a one-line "N passed, N failed" summary; the last reporter ends the run with
    // how many tests were skipped for want of a tool, and the command that prepares them.
    reporters: [
      'default',
      ['json', { outputFile: '.cache/vitest-results.json' }],
      './test/support/skipped-summary-reporter.ts',
    ],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // Real skopeo and large layers: one file at a time on a 2-core machine.
          fileParallelism: false,
        },
      },
    ],
  },
});
