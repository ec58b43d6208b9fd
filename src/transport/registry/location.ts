import { ImagegateError } from '../../errors.js';
import { canonicalDomain, DEFAULT_DOMAIN, formatImageReference, isLoopbackHost, type ImageReference } from '../../image/reference.js';
import type { RetryPolicy } from '../../util/retry.js';
import { findCredentials, type RegistryCredentials } from './credentials.js';
import { RegistryHttp } from './http.js';

/** How to reach registries: the CLI's registry flags, shared by sources and destinations. */
export interface RegistryOptions {
  /** Credentials given on the command line; otherwise they are looked up in auth files and credential helpers. */
  credentials?: RegistryCredentials;
  /** Use only this auth file (containers-auth.json or docker config.json format). */
  authFile?: string;
  /** PEM CA certificates trusted for registry TLS, in addition to the system's. */
  ca?: string;
  /** Allow plain HTTP, to loopback registries only: to every one (true), or to these hosts (`host:port`). */
  insecure?: boolean | string[];
  /** Upload rewritten blobs in chunks of this many bytes instead of one streamed request. */
  chunkSize?: number;
  retry?: RetryPolicy;
}

/** Docker Hub's API lives on another host than the name users write. */
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** Opens HTTP to the registry that `ref` names, with the credentials that apply to it. */
export async function connectRegistry(ref: ImageReference, options: RegistryOptions): Promise<RegistryHttp> {
  // Compared in canonical form, so `LOCALHOST:5000` is the `localhost:5000` a user allowed.
  const plainHttp = options.insecure === true || (Array.isArray(options.insecure) && options.insecure.some((h) => canonicalDomain(h) === canonicalDomain(ref.domain)));
  if (plainHttp && !isLoopbackHost(ref.domain)) {
    throw new ImagegateError(
      'USAGE',
      `--insecure allows plain HTTP only to registries on this machine (localhost, 127.0.0.0/8, ::1), not ${ref.domain}; give the registry a certificate and pass --ca-cert`,
    );
  }
  const credentials = options.credentials ?? (await findCredentials(ref.domain, ref.path, options.authFile !== undefined ? { authFile: options.authFile } : {}));
  return new RegistryHttp({
    host: ref.domain === DEFAULT_DOMAIN ? DOCKER_HUB_API_HOST : ref.domain,
    plainHttp,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(credentials !== undefined ? { credentials } : {}),
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
  });
}

export function describeRegistryReference(ref: ImageReference): string {
  return `docker://${formatImageReference(ref)}`;
}
