/**
 * The Vault setup document as data: which Transit keys exist, and which identities (CI pipelines, workloads, nodes,
 * operators) may do what with them. The admission webhook is not among them: it never talks to Vault.
 * `parseVaultSetup` reads it, `generateSetup` turns it into the Vault objects it stands for, and
 * `planSetup`/`applySetup` bring a Vault server to that state.
 */

export const VAULT_SETUP_API_VERSIONS = ['imagegate.dev/v1alpha1'] as const;
export const VAULT_SETUP_KIND = 'VaultSetup';

/** Where a JWT auth mount gets the issuer's signing keys: exactly one of three, as Vault's `auth/M/config` takes them. */
export type JwtKeySource =
  | { oidcDiscoveryUrl: string; oidcDiscoveryCaPem?: string }
  | { jwksUrl: string; jwksCaPem?: string }
  | { jwtValidationPubkeys: string[] };

/** A JWT auth mount backing one issuer (GitHub Actions, a GitLab instance, a cluster's service-account issuer). */
export interface JwtMount {
  mount: string;
  /** The `iss` every token must carry (`bound_issuer`). */
  issuer: string;
  keys: JwtKeySource;
}

export interface TransitKeySpec {
  name: string;
  /** Seconds; undefined leaves the key's auto-rotation as it is. */
  autoRotatePeriod?: number;
}

export interface GitHubBinding {
  /** `OWNER/REPO` */
  repository: string;
  /** e.g. `refs/heads/main`; undefined = any ref. */
  ref?: string;
  environment?: string;
  /** e.g. `acme/workflows/.github/workflows/build.yml@refs/heads/main` */
  jobWorkflowRef?: string;
  audience: string;
}

export interface GitLabBinding {
  project: { path: string } | { id: number };
  /** Only pipelines on protected branches and tags (default true). */
  refProtected: boolean;
  ref?: string;
  refType?: 'branch' | 'tag';
  environment?: string;
  audience: string;
}

export interface CiRole {
  name: string;
  /** Transit key names (in `transit.mount`) this pipeline may wrap layer keys with. */
  keys: string[];
  provider: { github: GitHubBinding } | { gitlab: GitLabBinding };
}

export interface TokenLifetime {
  /** Seconds. */
  ttl: number;
  /** Seconds. */
  maxTtl: number;
}

export interface WorkloadRole {
  name: string;
  namespaces: string[];
  serviceAccounts: string[];
  keys: string[];
  audience: string;
}

export interface VaultSetup {
  apiVersion: (typeof VAULT_SETUP_API_VERSIONS)[number];
  kind: typeof VAULT_SETUP_KIND;
  transit: { mount: string; keys: TransitKeySpec[] };
  ci?: {
    github?: JwtMount;
    gitlab?: JwtMount;
    token: TokenLifetime;
    roles: CiRole[];
  };
  workloads?: {
    /**
     * Kubernetes auth (TokenReview at every login). Without `caCert`, Vault reads its own pod's CA file (the document
     * said `caCertFromVaultPod: true`).
     */
    kubernetes?: { mount: string; host: string; caCert?: string; disableLocalCaJwt: boolean };
    /** JWT auth with the cluster's service-account issuer (no API-server call at login). */
    jwt?: JwtMount;
    token: TokenLifetime;
    roles: WorkloadRole[];
  };
  nodes?: {
    mount: string;
    role: string;
    keys: string[];
    token: TokenLifetime;
    /** Seconds; 0 = secret IDs do not expire. */
    secretIdTtl: number;
    /** CIDRs the secret ID may be used from and the token may be used from; empty = anywhere. */
    boundCidrs: string[];
  };
  operators?: { keys: string[] };
}
