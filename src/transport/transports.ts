import { ImagegateError } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { openDockerArchiveDestination, openDockerArchiveSource } from './docker-archive.js';
import { DirectoryFiles } from './layout-files.js';
import { openOciArchiveDestination, openOciArchiveSource } from './oci-archive.js';
import { OciLayoutDestination } from './oci-layout-destination.js';
import { OciLayoutSource, selectByRefName } from './oci-layout-source.js';

/**
 * Image locations in the syntax skopeo and containers-transports(5) use, so users can move commands between
 * the two tools: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`.
 */
export interface TransportReference {
  transport: 'oci' | 'oci-archive' | 'docker-archive';
  path: string;
  /** Tag (oci, oci-archive) or docker reference / @index (docker-archive). */
  ref?: string;
  /** The whole string as given. */
  text: string;
}

const TRANSPORTS = ['oci', 'oci-archive', 'docker-archive'] as const;

export function parseTransportReference(text: string): TransportReference {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon);
  if (!(TRANSPORTS as readonly string[]).includes(name)) {
    const hint = name === 'docker' ? ' (registries, docker://, are not supported yet)' : '';
    throw new ImagegateError(
      'BAD_REFERENCE',
      `${JSON.stringify(text)} does not name an image location${hint}; use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]`,
    );
  }
  const rest = text.slice(colon + 1);
  // As in containers/image, the path ends at the first ':' and the rest is the tag or reference.
  const sep = rest.indexOf(':');
  const path = sep < 0 ? rest : rest.slice(0, sep);
  const ref = sep < 0 ? undefined : rest.slice(sep + 1);
  if (path === '') throw new ImagegateError('BAD_REFERENCE', `${JSON.stringify(text)} has an empty path`);
  if (ref === '') throw new ImagegateError('BAD_REFERENCE', `${JSON.stringify(text)} ends in ':' but names no tag`);
  const out: TransportReference = { transport: name as TransportReference['transport'], path, text };
  if (ref !== undefined) out.ref = ref;
  return out;
}

export async function openSource(text: string): Promise<ImageSource> {
  const r = parseTransportReference(text);
  switch (r.transport) {
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

export async function openDestination(text: string): Promise<ImageDestination> {
  const r = parseTransportReference(text);
  switch (r.transport) {
    case 'oci':
      return OciLayoutDestination.open(r.path, r.ref, text);
    case 'oci-archive':
      return openOciArchiveDestination(r.path, r.ref, text);
    case 'docker-archive':
      return openDockerArchiveDestination(r.path, r.ref, text);
  }
}

/** Opens a source, hands it to `use`, and closes it whatever happens. */
export async function withSource<T>(text: string, use: (source: ImageSource) => Promise<T>): Promise<T> {
  const source = await openSource(text);
  try {
    return await use(source);
  } finally {
    await source.close();
  }
}
