import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { watchPolicyFile } from '../../../webhook/policy-watch.js';
import { testTempDir } from '../../support/tools.js';

const policy = (mode: string): string => `apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nmode: ${mode}\nrepositories: []\n`;

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(check()).toBe(true);
}

describe('the webhook policy file', () => {
  it('is re-read when it changes; an invalid edit keeps the previous policy and says why', async () => {
    const file = path.join(await testTempDir('policy-watch-'), 'policy.yaml');
    await writeFile(file, policy('enforce'));
    const log: string[] = [];
    const watched = await watchPolicyFile(file, { intervalMs: 20, log: (m) => log.push(m) });
    try {
      expect(watched.current().mode).toBe('enforce');
      await writeFile(file, policy('warn'));
      await until(() => watched.current().mode === 'warn');
      expect(log).toContain(`reloaded ${file}`);

      await writeFile(file, policy('enforce') + 'requireEncryption: true\n');
      await until(() => log.some((m) => m.includes('is invalid, keeping the previous policy')));
      expect(watched.current().mode).toBe('warn');
    } finally {
      watched.stop();
    }
  });

  it('refuses to start on an invalid policy', async () => {
    const file = path.join(await testTempDir('policy-watch-'), 'policy.yaml');
    await writeFile(file, 'kind: AdmissionPolicy\n');
    await expect(watchPolicyFile(file, { intervalMs: 20, log: () => {} })).rejects.toThrow(/apiVersion/);
  });
});
