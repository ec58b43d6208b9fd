/**
 * The README's "Run the gate in a local cluster" command, run as written: scripts/cluster-demo.sh brings the one-node
 * cluster up, runs an encrypted sample image as an allowed service account, is refused for another, and tears it all
 * down again, leaving nothing running.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterUnavailable } from '../support/cluster.js';
import { run, tempDir, type TempDir } from '../support/tools.js';

const skip = clusterUnavailable();
const DEMO = fileURLToPath(new URL('../../scripts/cluster-demo.sh', import.meta.url));

describe.skipIf(skip)('scripts/cluster-demo.sh (README: Run the gate in a local cluster)', () => {
  let work: TempDir;
  beforeAll(async () => {
    work = await tempDir('cluster-demo-');
  });
  afterAll(async () => work?.cleanup());

  it('shows an allowed pod printing the encrypted layer and a denied one, then leaves nothing running', async () => {
    const dir = path.join(work.path, 'cluster');
    const res = await run(DEMO, [dir]);
    const out = res.stdout + res.stderr;
    expect(res.code, out).toBe(0);
    expect(out).toMatch(/only the encrypted layer holds this line: [0-9a-f]{16}/);
    expect(out).toMatch(/@sha256:[0-9a-f]{64}/);
    expect(out).toContain('[rule service-account-not-allowed]');
    // Every daemon ran with paths under the cluster directory: none is left.
    const left = await run('pgrep', ['-f', dir]);
    expect(left.stdout.trim(), 'processes still running with the cluster directory in their command line').toBe('');
  }, 900_000);
});
