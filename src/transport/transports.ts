import { stat } from 'node:fs/promises';
import { ImagegateError, systemErrorCode } from '../errors.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { isNoSpace, noSpaceError } from '../util/system-errors.js';
import { sweepStaleStaging, type SweptStaging } from './staging-sweep.js';
import { openDockerArchiveDestination, openDockerArchiveSource } from './docker-archive.js';
import { DirectoryFiles } from './layout-files.js';
import { openOciArchiveDestination, openOciArchiveSource } from './oci-archive.js';
import { OciLayoutDestination } from './oci-layout-destination.js';
import { OciLayoutSource, selectByRefName } from './oci-layout-source.js';
import { canonicalRepository, parseImageReference, type ImageReference } from '../image/reference.js';
import type { RegistryOptions } from './registry/location.js';
import { INTERRUPTED_PUSH_LEAVES, RegistryDestination } from './registry/registry-destination.js';
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
  /**
   * Told about each staging directory an earlier, killed run into the same file destination left behind, which
   * opening it removes (staging-sweep.ts).
   */
  onStaleStagingRemoved?: (swept: SweptStaging) => void;
}

/** `sweepStaleStaging` for an image location: its file (oci:, oci-archive:, docker-archive:); nothing for a registry. */
export async function sweepStaleStagingOf(location: string): Promise<SweptStaging[]> {
  const r = parseTransportReference(location);
  return r.transport === 'docker' ? [] : sweepStaleStaging(r.path);
}

/** What an interrupted write to `text` leaves behind, for the message that reports the interruption. */
export function interruptedWriteLeaves(text: string): string {
  return parseTransportReference(text).transport === 'docker' ? INTERRUPTED_PUSH_LEAVES : 'nothing was written';
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
      const kind = await pathKind(r.path);
      if (kind === 'missing') throw new ImagegateError('NOT_FOUND', `${text}: directory ${r.path} does not exist`);
      if (kind === 'other') {
        throw new ImagegateError(
          'NOT_FOUND',
          `${text}: ${r.path} is a file, not an OCI layout directory; a tar archive is named oci-archive:${r.path} (or docker-archive:${r.path} for \`docker save\` output)`,
        );
      }
      return new OciLayoutSource(new DirectoryFiles(r.path), text, selectByRefName(r.ref));
    }
    case 'oci-archive':
    case 'docker-archive': {
      if ((await pathKind(r.path)) === 'directory') {
        throw new ImagegateError('NOT_FOUND', `${text}: ${r.path} is a directory, not an archive file; an OCI layout directory is named oci:${r.path}`);
      }
      return r.transport === 'oci-archive' ? openOciArchiveSource(r.path, r.ref, text) : openDockerArchiveSource(r.path, r.ref, text);
    }
  }
}

/** What a file transport's path names; a path through a file (`file/x`) names nothing there can be. */
async function pathKind(p: string): Promise<'directory' | 'other' | 'missing'> {
  try {
    return (await stat(p)).isDirectory() ? 'directory' : 'other';
  } catch (e) {
    const code = systemErrorCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw e;
  }
}

export async function openDestination(text: string, options: TransportOptions = {}): Promise<ImageDestination> {
  const r = parseTransportReference(text);
  if (r.transport === 'docker') return RegistryDestination.open(r.reference, options.registry ?? {});
  // Before adding to it: clear what killed runs into the same destination left.
  for (const swept of await sweepStaleStagingOf(text)) options.onStaleStagingRemoved?.(swept);
  const kind = await pathKind(r.path);
  if (r.transport === 'oci' && kind === 'other') {
    throw new ImagegateError('DESTINATION', `${text}: ${r.path} is a file, not a directory; an OCI layout is a directory (choose a new one), and a tar archive is written with oci-archive:${r.path}`);
  }
  if (r.transport !== 'oci' && kind === 'directory') {
    throw new ImagegateError('DESTINATION', `${text}: ${r.path} is a directory; an archive is a file (choose a new file name), and an OCI layout directory is written with oci:${r.path}`);
  }
  // Opening writes nothing (staging is made on the first write), so a full disk surfaces in FileDestination.
  const opened =
    r.transport === 'oci'
      ? await OciLayoutDestination.open(r.path, r.ref, text)
      : r.transport === 'oci-archive'
        ? await openOciArchiveDestination(r.path, r.ref, text)
        : await openDockerArchiveDestination(r.path, r.ref, text);
  return new FileDestination(opened, r.path);
}

/**
 * A destination on this machine's disks, whose write failures name the destination: a full file system surfaces from
 * deep inside a stream as a bare ENOSPC with no path, which alone reads like a bug. The copy removes what was
 * staged; the message says where, how much room is left, and what to do.
 */
class FileDestination implements ImageDestination {
  constructor(
    private readonly inner: ImageDestination,
    private readonly target: string,
  ) {}

  get description(): string {
    return this.inner.description;
  }
  get preservesLayerAnnotations(): boolean {
    return this.inner.preservesLayerAnnotations;
  }
  get canStoreIndex(): boolean {
    return this.inner.canStoreIndex;
  }

  reuseBlob(...args: Parameters<ImageDestination['reuseBlob']>): ReturnType<ImageDestination['reuseBlob']> {
    return this.named(this.inner.reuseBlob(...args));
  }
  putBlob(...args: Parameters<ImageDestination['putBlob']>): ReturnType<ImageDestination['putBlob']> {
    return this.named(this.inner.putBlob(...args));
  }
  putManifest(...args: Parameters<ImageDestination['putManifest']>): ReturnType<ImageDestination['putManifest']> {
    return this.named(this.inner.putManifest(...args));
  }
  commit(...args: Parameters<ImageDestination['commit']>): ReturnType<ImageDestination['commit']> {
    return this.named(this.inner.commit(...args));
  }
  abort(): Promise<void> {
    return this.inner.abort();
  }

  private named<T>(work: Promise<T>): Promise<T> {
    return work.catch((e: unknown) => {
      throw isNoSpace(e) ? noSpaceError(e, this.target, this.inner.description) : e;
    });
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
