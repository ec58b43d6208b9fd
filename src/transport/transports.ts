import { ImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { openDockerArchiveDestination, openDockerArchiveSource } from './docker-archive.js';
import { DirectoryFiles } from './layout-files.js';
import { openOciArchiveDestination, openOciArchiveSource } from './oci-archive.js';
import { OciLayoutDestination } from './oci-layout-destination.js';
import { OciLayoutSource, selectByRefName } from './oci-layout-source.js';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import type { RegistryOptions } from './registry/location.js';
import { RegistryDestination } from './registry/registry-destination.js';
import { RegistrySource } from './registry/registry-source.js';

/**
 * Image locations in the syntax skopeo and containers-transports(5) use, so users can move commands between
 * the two tools: `docker://REFERENCE`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`.
 */
export type TransportReference = FileTransportReference | RegistryTransportReference;

export interface FileTransportReference {
  transport: 'oci' | 'oci-archive' | 'docker-archive';
  path: string;
  /** Tag (oci, oci-archive) or docker reference / @index (docker-archive). */
  ref?: string;
  /** The whole string as given. */
  text: string;
}

export interface RegistryTransportReference {
  transport: 'docker';
  reference: ImageReference;
  text: string;
}

const FILE_TRANSPORTS = ['oci', 'oci-archive', 'docker-archive'] as const;
const REGISTRY_PREFIX = 'docker://';

/** Options a transport may need; only registries have any so far. */
export interface TransportOptions {
  registry?: RegistryOptions;
}

export function parseTransportReference(text: string): TransportReference {
  if (text.startsWith(REGISTRY_PREFIX)) {
    return { transport: 'docker', reference: parseImageReference(text.slice(REGISTRY_PREFIX.length)), text };
  }
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon);
  if (!(FILE_TRANSPORTS as readonly string[]).includes(name)) {
    const hint = name === 'docker' ? ' (a registry image is docker://HOST/REPOSITORY:TAG, with two slashes)' : '';
    throw new ImagegateError(
      'BAD_REFERENCE',
      `${JSON.stringify(text)} does not name an image location${hint}; use docker://HOST/REPOSITORY[:TAG], oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]`,
    );
  }
  const rest = text.slice(colon + 1);
  // As in containers/image, the path ends at the first ':' and the rest is the tag or reference.
  const sep = rest.indexOf(':');
  const path = sep < 0 ? rest : rest.slice(0, sep);
  const ref = sep < 0 ? undefined : rest.slice(sep + 1);
  if (path === '') throw new ImagegateError('BAD_REFERENCE', `${JSON.stringify(text)} has an empty path`);
  if (ref === '') throw new ImagegateError('BAD_REFERENCE', `${JSON.stringify(text)} ends in ':' but names no tag`);
  const out: FileTransportReference = { transport: name as FileTransportReference['transport'], path, text };
  if (ref !== undefined) out.ref = ref;
  return out;
}

export async function openSource(text: string, options: TransportOptions = {}): Promise<ImageSource> {
  const r = parseTransportReference(text);
  switch (r.transport) {
    case 'docker':
      return RegistrySource.open(r.reference, options.registry ?? {});
    case 'oci': {
      const files = new DirectoryFiles(r.path);
      if (!(await files.exists(''))) throw new ImagegateError('NOT_FOUND', `${text}: directory ${r.path} does not exist`);
      return new OciLayoutSource(files, text, selectByRefName(r.ref));
    }
    case 'oci-archive':
      return openOciArchiveSource(r.path, r.ref, text);
    case 'docker-archive':
      return openDockerArchiveSource(r.path, r.ref, text);
  }
}

export async function openDestination(text: string, options: TransportOptions = {}): Promise<ImageDestination> {
  const r = parseTransportReference(text);
  switch (r.transport) {
    case 'docker':
      return RegistryDestination.open(r.reference, options.registry ?? {});
    case 'oci':
      return OciLayoutDestination.open(r.path, r.ref, text);
    case 'oci-archive':
      return openOciArchiveDestination(r.path, r.ref, text);
    case 'docker-archive':
      return openDockerArchiveDestination(r.path, r.ref, text);
  }
}

/** Opens a source, hands it to `use`, and closes it whatever happens. */
export async function withSource<T>(text: string, use: (source: ImageSource) => Promise<T>, options: TransportOptions = {}): Promise<T> {
  const source = await openSource(text, options);
  try {
    return await use(source);
  } finally {
    await source.close();
  }
}

/**
 * `registry.example/team/app` for a registry image, in canonical form (src/image/reference.ts), the name Vault
 * bindings use; undefined for files.
 */
export function repositoryOf(text: string): string | undefined {
  const r = parseTransportReference(text);
  return r.transport === 'docker' ? canonicalRepository(r.reference) : undefined;
}
