import tls from 'node:tls';

let systemAndDefault: string[] | undefined;
const contexts = new Map<string, tls.SecureContext>();

/**
 * The CA certificates a registry connection trusts: Node's bundled roots with NODE_EXTRA_CA_CERTS, the operating
 * system's store (where a company's internal CA usually lives, and where skopeo and docker look), and the
 * `--ca-cert` files. Node alone would use only the first, and a `ca` option replaces rather than adds to it.
 */
export function trustedCertificates(extra: string | undefined): string[] {
  if (systemAndDefault === undefined) {
    const get = (tls as { getCACertificates?: (type: 'default' | 'system') => string[] }).getCACertificates;
    systemAndDefault = get !== undefined ? [...new Set([...get('default'), ...safely(() => get('system'))])] : [...tls.rootCertificates];
  }
  return extra !== undefined ? [...systemAndDefault, extra] : systemAndDefault;
}

/**
 * One TLS context per set of trusted CAs, for the whole process. Parsing some 600 certificates takes ~40 ms; a `ca`
 * option would make every new connection pay it again (each registry host, each cold webhook look-up).
 */
export function trustedContext(extra: string | undefined): tls.SecureContext {
  const key = extra ?? '';
  let context = contexts.get(key);
  if (context === undefined) {
    context = tls.createSecureContext({ ca: trustedCertificates(extra) });
    contexts.set(key, context);
  }
  return context;
}

/** A machine without a readable system store still has Node's own roots. */
function safely(read: () => string[]): string[] {
  try {
    return read();
  } catch {
    return [];
  }
}

/**
 * Extra registry CA certificates (PEM) read from the environment, beside --ca-cert files: how the webhook hands a
 * private registry's CA to the containers it injects, which have no file of it.
 */
export const REGISTRY_CA_ENV = 'IMAGEGATE_REGISTRY_CA';
