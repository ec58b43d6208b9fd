import type { AdmissionPolicy } from '../../src/policy/types.js';

/**
 * The AdmissionPolicy unit tests of admission start from: enforce, node model, failing closed, every namespace, and
 * one rule requiring encryption for the repositories `match` names. `extra` replaces whole fields.
 */
export function protectingPolicy(match: string, extra: Partial<AdmissionPolicy> = {}): AdmissionPolicy {
  return {
    apiVersion: 'imagegate.dev/v1alpha1',
    kind: 'AdmissionPolicy',
    mode: 'enforce',
    runtimeModel: 'node',
    failurePolicy: 'closed',
    namespaces: { include: ['*'], exempt: [] },
    repositories: [{ match, requireEncrypted: true, keys: [], vaultOnly: false }],
    insecureRegistries: [],
    ...extra,
  };
}
