/**
 * The admission policy as data, and what the webhook knows about a pod's images when it asks the policy. Evaluation
 * (src/policy/evaluate.ts) is a pure function of these, so every decision is unit-testable without a server.
 */

import type { ManifestEncryption } from '../crypto/layer-recipients.js';

export type PolicyMode = 'enforce' | 'warn' | 'audit';
export type RuntimeModel = 'node' | 'pod';

/** A Vault Transit key a protected repository accepts, and who may run images wrapped by it. */
export interface AllowedKey {
  /** `MOUNT/keys/NAME`, as imagegate writes it in audit and inspect output, e.g. `transit/keys/prod-layers`. */
  key: string;
  /** Lowest acceptable key version (after a rotation and rewrap). */
  minVersion: number;
  /** Service accounts allowed to run images wrapped by this key, as `NAMESPACE/NAME` globs (`prod/*`). */
  serviceAccounts: string[];
}

export interface RepositoryRule {
  /** Repository glob over `HOST/PATH` (`*` within a segment, `**` across). */
  match: string;
  /** Images must have at least one encrypted layer (default true for a rule). */
  requireEncrypted: boolean;
  /** Every encrypted layer must be Vault-wrapped by one of these keys; empty = encryption of any kind (jwe too) is enough. */
  keys: AllowedKey[];
  /**
   * No recipient but Vault may be able to decrypt (default true when `keys` is set): a jwe private key decrypts
   * anywhere, without asking Vault, so a jwe recipient beside the Vault key is a way around the gate.
   */
  vaultOnly: boolean;
}

export interface AdmissionPolicy {
  apiVersion: 'imagegate.dev/v1alpha1';
  kind: 'AdmissionPolicy';
  mode: PolicyMode;
  runtimeModel: RuntimeModel;
  /** What happens when the webhook cannot decide (registry down, timeout): deny (closed) or allow (open). */
  failurePolicy: 'closed' | 'open';
  namespaces: {
    /** Namespace globs in scope; default `["*"]`. */
    include: string[];
    /** Namespace globs never checked (system namespaces, the webhook's own). */
    exempt: string[];
  };
  /** First matching rule wins; repositories matching none are not protected. */
  repositories: RepositoryRule[];
  /**
   * Registries on the nodes' loopback (`host:port`) that the containers imagegate injects may reach over plain HTTP
   * (a test or edge registry); canonical; default none, so they use TLS everywhere else.
   */
  insecureRegistries: string[];
}

/**
 * What the registry told us about one platform image of a container's image: how its layers are encrypted, read from
 * the manifest alone (src/crypto/layer-recipients.ts). `serviceKeys` are the Vault Transit keys, with the version each
 * ciphertext is at; `offlineSchemes` the schemes that decrypt without asking Vault.
 */
export interface PlatformImageFacts extends ManifestEncryption {
  /** `linux/amd64`, or undefined for a single-platform image. */
  platform?: string;
}

/** One container of the pod, with its image resolved. */
export interface ContainerFacts {
  /** `containers`, `initContainers` or `ephemeralContainers`. */
  list: 'containers' | 'initContainers' | 'ephemeralContainers';
  name: string;
  /** The image as written in the spec. */
  image: string;
  /** `HOST/PATH` in canonical form (src/image/reference.ts canonicalRepository). */
  repository: string;
  /** The digest it resolved to. */
  digest: string;
  /** Every platform of the image (one entry for a single-platform image). */
  platforms: PlatformImageFacts[];
}

export interface AdmissionSubject {
  namespace: string;
  /** The pod's service account (`default` when unset). */
  serviceAccount: string;
  containers: ContainerFacts[];
}

/** One broken rule, worded for the person whose deployment was refused. */
export interface Violation {
  container: string;
  image: string;
  /**
   * Stable rule id: `encryption-required`, `key-not-allowed`, `key-version-too-old`, `service-account-not-allowed`,
   * `binding-mismatch`, `other-recipients`, `tampered-key`.
   */
  rule: string;
  message: string;
  remedy: string;
}

export interface Decision {
  /** False only when mode is enforce and something is violated. */
  allowed: boolean;
  mode: PolicyMode;
  /** Why the request was not checked at all (exempt namespace), if it was not. */
  skipped?: string;
  violations: Violation[];
  /**
   * What protects each container, by container name (absent = unprotected): the matching rule's glob, or, for an
   * image whose Vault keys no rule names, the repository its keys are bound to.
   */
  protectedBy: Record<string, string>;
}
