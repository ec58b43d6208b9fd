import { ImagegateError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

/**
 * A docker image reference (`[domain[:port]/]path[:tag][@digest]`), following distribution/reference's grammar
 * and Docker's normalisation: a first component is a registry host only if it contains `.` or `:`, is
 * `localhost`, or has upper-case letters; otherwise the registry is docker.io and one-part names get `library/`.
 */
export interface ImageReference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const MAX_NAME_LENGTH = 255;

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN = `(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);

function bad(ref: string, why: string): ImagegateError {
  return new ImagegateError('BAD_REFERENCE', `invalid image reference ${JSON.stringify(ref)}: ${why}`);
}

export function parseImageReference(ref: string): ImageReference {
  if (ref === '') throw bad(ref, 'it is empty');
  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!DIGEST_RE.test(d)) throw bad(ref, `${JSON.stringify(d)} is not a digest`);
    if (!isDigest(d)) throw bad(ref, `digest ${JSON.stringify(d)} must be sha256 or sha512 with lowercase hex of the right length`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    if (!TAG_RE.test(tag)) throw bad(ref, `tag ${JSON.stringify(tag)} must be 1-128 of [A-Za-z0-9_.-] and not start with . or -`);
    rest = rest.slice(0, colon);
  }
  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? rest : rest.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) throw bad(ref, `registry host ${JSON.stringify(domain)} is not a valid host[:port]`);
  } else {
    domain = DEFAULT_DOMAIN;
    path = rest;
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (!PATH_RE.test(path)) {
    throw bad(ref, `repository ${JSON.stringify(path)} must be lowercase path components of [a-z0-9] separated by ".", "_", "__", "-" or "/"`);
  }
  if (domain.length + 1 + path.length > MAX_NAME_LENGTH) throw bad(ref, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  const out: ImageReference = { domain, path };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** Every host name that reaches Docker Hub's registry, folded into one. */
const DOCKER_HUB_ALIASES = new Set([DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, 'registry-1.docker.io', 'registry.hub.docker.com']);
/** Ports a registry host listens on when none is written: https's, and plain http's for loopback registries. */
const DEFAULT_PORTS = new Set(['443', '80']);

/**
 * The one spelling of a registry host that policy decisions, bindings and cache keys use: lower-cased, IP literals in
 * their standard form (`[0:0::1]` → `[::1]`, `127.1` → `127.0.0.1`, as the resolver reads them), the default ports
 * dropped and Docker Hub's aliases folded into `docker.io`. Two spellings that reach the same registry must never be
 * judged apart: `LOCALHOST:443/prod/app` is `localhost/prod/app`. Not for connecting: `host:80` and `host` are one
 * name here, but a client dials them on different ports.
 */
export function canonicalDomain(domain: string): string {
  let host: string;
  try {
    // WHATWG URL parsing lower-cases, normalises IPv4 and IPv6 literals and keeps any port but 443.
    host = new URL(`https://${domain}/`).host;
  } catch {
    host = domain.toLowerCase();
  }
  const port = /:(\d+)$/.exec(host);
  if (port !== null && DEFAULT_PORTS.has(port[1]!)) host = host.slice(0, port.index);
  return DOCKER_HUB_ALIASES.has(host) ? DEFAULT_DOMAIN : host;
}

/** `host[:port]` names this machine (localhost, 127.0.0.0/8, ::1): where plain HTTP may be allowed. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127(?:\.\d{1,3}){3}$/.test(name);
}

/** `HOST/PATH` in canonical form ({@link canonicalDomain}, Docker Hub's implicit `library/`): what decisions compare. */
export function canonicalRepository(r: Pick<ImageReference, 'domain' | 'path'>): string {
  const domain = canonicalDomain(r.domain);
  const path = domain === DEFAULT_DOMAIN && !r.path.includes('/') ? `library/${r.path}` : r.path;
  return `${domain}/${path}`;
}

/**
 * A repository glob (`*` within a segment, `**` across) in the spelling canonical names have, so that no spelling of
 * a repository escapes it: `Registry.Example:443/prod/**` matches what `registry.example/prod/app` names. The host is
 * canonicalised like a name (only lower-cased when it holds a wildcard); a one-segment Docker Hub glob means
 * `library/` names (`docker.io/nginx`, `docker.io/*`), but `docker.io/**` keeps meaning every Hub repository.
 */
export function canonicalRepositoryGlob(glob: string): string {
  const slash = glob.indexOf('/');
  const host = glob.slice(0, slash);
  const path = glob.slice(slash + 1);
  if (host.includes('*')) return `${host.toLowerCase()}/${path}`;
  const domain = canonicalDomain(host);
  const oneSegment = !path.includes('/') && !path.includes('**');
  return `${domain}/${domain === DEFAULT_DOMAIN && oneSegment ? `library/${path}` : path}`;
}

/**
 * A repository name as a user or an annotation writes it (`LOCALHOST:443/prod/app`, `docker.io/nginx`,
 * `registry-1.docker.io/library/nginx`), in canonical form. Unlike an image reference, the first component is always
 * the host: a binding or a `--bind` value names a registry. Throws on a name that is not `HOST/PATH`.
 */
export function canonicalRepositoryName(name: string): string {
  const slash = name.indexOf('/');
  const domain = slash < 0 ? '' : name.slice(0, slash);
  const path = name.slice(slash + 1);
  if (!DOMAIN_RE.test(domain)) throw bad(name, 'a repository name is HOST[:PORT]/PATH, starting with its registry host');
  if (!PATH_RE.test(path)) throw bad(name, `repository ${JSON.stringify(path)} must be lowercase path components of [a-z0-9] separated by ".", "_", "__", "-" or "/"`);
  return canonicalRepository({ domain, path });
}

/**
 * A repository name from an image's own annotations (a Vault binding) in canonical form; one that is not a repository
 * name stays as written, which never equals a canonical name, so comparing it fails closed.
 */
export function canonicalBindingName(name: string): string {
  try {
    return canonicalRepositoryName(name);
  } catch {
    return name;
  }
}

/** `docker.io/library/busybox:latest`, the fully-qualified form. */
export function formatImageReference(r: ImageReference): string {
  return `${r.domain}/${r.path}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** `busybox:latest` for Docker Hub official images, as `docker save` writes RepoTags. */
export function familiarName(r: ImageReference): string {
  let name = `${r.domain}/${r.path}`;
  if (r.domain === DEFAULT_DOMAIN) name = r.path.startsWith('library/') ? r.path.slice('library/'.length) : r.path;
  return `${name}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}
