import { unwatchFile, watchFile } from 'node:fs';
import { loadPolicyFile } from '../src/policy/load-policy.js';
import type { AdmissionPolicy } from '../src/policy/types.js';

export interface WatchedPolicy {
  /** The policy now in force: the file's last valid version. */
  current(): AdmissionPolicy;
  stop(): void;
}

/**
 * The webhook's policy file, re-read when it changes (a ConfigMap update), so no restart is needed. An invalid edit
 * keeps the previous policy and says why: a typo must not leave the webhook without a policy. The first load is
 * strict, so the webhook never starts on an invalid one.
 */
export async function watchPolicyFile(file: string, options: { intervalMs: number; log: (message: string) => void }): Promise<WatchedPolicy> {
  let policy = await loadPolicyFile(file);
  watchFile(file, { interval: options.intervalMs, persistent: false }, () => {
    loadPolicyFile(file).then(
      (p) => {
        policy = p;
        options.log(`reloaded ${file}`);
      },
      (e: unknown) => options.log(`${file} is invalid, keeping the previous policy: ${e instanceof Error ? e.message : String(e)}`),
    );
  });
  return { current: () => policy, stop: () => unwatchFile(file) };
}
