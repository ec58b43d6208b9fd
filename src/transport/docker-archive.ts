import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ImagegateError } from '../errors.js';
import type { Descriptor } from '../image/descriptor.js';
import { digestHex, parseDigest, sha256Digest, type Digest } from '../image/digest.js';
import type { ImageDestination, ImageSource } from '../image/image.js';
import { MAX_MANIFEST_BYTES, parseIndex, parseManifest, serialize } from '../image/manifest.js';
import { isEncryptedMediaType, isIndexMediaType, isManifestMediaType, MediaType } from '../image/media-types.js';
import { familiarName, formatImageReference, parseImageReference, type ImageReference } from '../image/reference.js';
import { JsonReader, parseJson } from '../image/validate.js';
import { openStaging, StagedArchiveDestination, type ArchiveStaging } from './staged-archive-destination.js';
import type { ArchiveMember } from './tar-pack.js';
import { blobPath, OciLayoutSource, readLayoutIndex, REF_NAME_ANNOTATION, selectByRefName } from './oci-layout-source.js';
import { TarFiles } from './tar-index.js';
import { readVerifiedBlob, verifiedBlobStream } from './verified-blob.js';

/**
 * `docker-archive:FILE[:REF]`: the `docker save` / `docker load` format. REF is `name:tag` (matched against
 * the archive's RepoTags after normalising both, so `busybox` and `docker.io/library/busybox:latest` agree) or
 * `@N`, the 0-based position in manifest.json.
 *
 * Two generations of the format exist (reference/registry.md A.3): Docker >= 25 writes an OCI layout
 * (`oci-layout`, `index.json`, `blobs/`) with a `manifest.json` beside it, and is read as a layout, which keeps
 * the image's original manifest and digest; older archives have only `manifest.json`, from which a Docker schema 2
 * manifest is synthesised.
 */

/** The annotation Docker >= 25 and containerd put on index.json entries: the full image reference. */
const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/** manifest.json lists every image of the archive with its RepoTags and layer paths; a few KiB per image. */
const MAX_MANIFEST_JSON_BYTES = 16 * 1024 * 1024;
/** Image configs grow with history; Docker caps nothing, but a config larger than this is not a real one. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** One element of manifest.json. */
interface ManifestItem {
  config: string;
  repoTags: string[];
  layers: string[];
}

type Selector = { kind: 'only' } | { kind: 'position'; position: number } | { kind: 'name'; name: string; text: string };

export async function openDockerArchiveSource(file: string, ref: string | undefined, description: string): Promise<ImageSource> {
  const selector = parseSourceRef(ref, description);
  const files = await TarFiles.open(file);
  try {
    const items = (await files.exists('manifest.json')) ? await readManifestJson(files) : undefined;
    if ((await files.exists('oci-layout')) && (await files.exists('index.json'))) {
      const chosen = await selectFromLayout(files, items, selector, description);
      if (chosen !== undefined) return new OciLayoutSource(files, description, () => chosen);
    }
    if (items === undefined) {
      throw new ImagegateError(
        'BAD_FORMAT',
        `${description}: ${file} is not a docker save archive: it has neither manifest.json nor an OCI index.json`,
      );
    }
    return await LegacyArchiveSource.build(files, selectItem(items, selector, description), description);
  } catch (e) {
    await files.close();
    throw e;
  }
}

function parseSourceRef(ref: string | undefined, description: string): Selector {
  if (ref === undefined) return { kind: 'only' };
  if (ref.startsWith('@')) {
    if (!/^@[0-9]+$/.test(ref)) {
      throw new ImagegateError('BAD_REFERENCE', `${description}: ${JSON.stringify(ref)} must be @N with N the 0-based position of the image in the archive`);
    }
    return { kind: 'position', position: Number(ref.slice(1)) };
  }
  return { kind: 'name', name: formatImageReference(parseDockerRef(ref, description)), text: ref };
}

/** A `name[:tag]` docker reference, `latest` when untagged (as docker save/load treat it); digests are refused. */
function parseDockerRef(ref: string, description: string): ImageReference {
  const parsed = parseImageReference(ref);
  if (parsed.digest !== undefined) {
    throw new ImagegateError('BAD_REFERENCE', `${description}: docker-archive references are name:tag, without a digest; drop ${JSON.stringify(`@${parsed.digest}`)}`);
  }
  return { ...parsed, tag: parsed.tag ?? 'latest' };
}

/** The fully qualified form of a RepoTag or annotation, or undefined when it is not a valid reference. */
function normalizeTag(text: string): string | undefined {
  try {
    const r = parseImageReference(text);
    if (r.digest !== undefined) return undefined;
    return formatImageReference({ ...r, tag: r.tag ?? 'latest' });
  } catch {
    return undefined;
  }
}

async function readManifestJson(files: TarFiles): Promise<ManifestItem[]> {
  const where = files.describe('manifest.json');
  const r = new JsonReader(where, parseJson(await files.readFile('manifest.json', MAX_MANIFEST_JSON_BYTES), where));
  return r.array().map((item) => ({
    config: item.field('Config').string(),
    repoTags: item.field('RepoTags').optionalArray().map((t) => t.string()),
    layers: item.field('Layers').optionalArray().map((l) => l.string()),
    // LayerSources (foreign layers) are not used: like containers/image, the layer files in the archive are
    // served as they are, and the manifest describes exactly those bytes.
  }));
}

function selectItem(items: ManifestItem[], selector: Selector, description: string): ManifestItem {
  switch (selector.kind) {
    case 'only':
      if (items.length !== 1) {
        throw new ImagegateError('USAGE', `${description} holds ${items.length} images; name one as docker-archive:FILE:NAME:TAG or docker-archive:FILE:@N (${listItems(items)})`);
      }
      return items[0]!;
    case 'position': {
      const item = items[selector.position];
      if (item === undefined) {
        throw new ImagegateError('NOT_FOUND', `${description}: there is no image @${selector.position}; the archive holds ${items.length} (${listItems(items)})`);
      }
      return item;
    }
    case 'name': {
      const item = findItemByName(items, selector.name);
      if (item === undefined) {
        throw new ImagegateError('NOT_FOUND', `${description}: no image is tagged ${JSON.stringify(selector.text)} (${listItems(items)})`);
      }
      return item;
    }
  }
}

function findItemByName(items: ManifestItem[], name: string): ManifestItem | undefined {
  return items.find((item) => item.repoTags.some((t) => normalizeTag(t) === name));
}

/** `@0: busybox:latest; @1: untagged` — what a user can pass as REF. */
function listItems(items: ManifestItem[]): string {
  if (items.length === 0) return 'it is empty';
  return `it has ${items.map((item, i) => `@${i}: ${item.repoTags.length > 0 ? item.repoTags.join(', ') : 'untagged'}`).join('; ')}`;
}

/**
 * Picks the index.json entry of a Docker >= 25 archive. Returns undefined when the entry cannot be told from
 * index.json but manifest.json names the image, so the caller falls back to manifest.json.
 */
async function selectFromLayout(
  files: TarFiles,
  items: ManifestItem[] | undefined,
  selector: Selector,
  description: string,
): Promise<Descriptor | undefined> {
  const entries = await readLayoutIndex(files);
  // Only for verified reads of the candidates' manifests; the selection is done here.
  const reader = new OciLayoutSource(files, description, selectByRefName(undefined));
  // Docker writes one entry per tag, so two entries with the same digest are the same image.
  const distinct = [...new Map(entries.map((e) => [e.digest, e])).values()];
  const viaItem = async (item: ManifestItem): Promise<Descriptor | undefined> => {
    const config = sha256Digest(await files.readFile(item.config, MAX_CONFIG_BYTES));
    return findEntryByConfig(reader, distinct, config);
  };
  switch (selector.kind) {
    case 'only':
      if (distinct.length === 1) return distinct[0]!;
      if (items !== undefined && items.length === 1) return viaItem(items[0]!);
      if (distinct.length === 0 && items !== undefined) return undefined;
      throw new ImagegateError(
        'USAGE',
        `${description} holds ${Math.max(distinct.length, items?.length ?? 0)} images; name one as docker-archive:FILE:NAME:TAG or docker-archive:FILE:@N (${
          items !== undefined ? listItems(items) : listEntries(distinct)
        })`,
      );
    case 'position': {
      if (items !== undefined) {
        const item = items[selector.position];
        if (item === undefined) {
          throw new ImagegateError('NOT_FOUND', `${description}: there is no image @${selector.position}; the archive holds ${items.length} (${listItems(items)})`);
        }
        return viaItem(item);
      }
      const entry = distinct[selector.position];
      if (entry === undefined) {
        throw new ImagegateError('NOT_FOUND', `${description}: there is no image @${selector.position}; the archive holds ${distinct.length} (${listEntries(distinct)})`);
      }
      return entry;
    }
    case 'name': {
      const named = entries.filter((e) => {
        const annotated = entryName(e);
        return annotated !== undefined && normalizeTag(annotated) === selector.name;
      });
      if (named.length > 0) return named[named.length - 1]!;
      const item = items !== undefined ? findItemByName(items, selector.name) : undefined;
      if (item !== undefined) return viaItem(item);
      throw new ImagegateError(
        'NOT_FOUND',
        `${description}: no image is tagged ${JSON.stringify(selector.text)} (${items !== undefined ? listItems(items) : listEntries(distinct)})`,
      );
    }
  }
}

/**
 * The image name an index.json entry carries: containerd's full-name annotation, or a ref.name that is a full
 * reference. Docker 25 puts only the tag into ref.name, and a bare tag such as `latest` names no repository, so
 * such entries are matched through manifest.json's RepoTags instead.
 */
function entryName(e: Descriptor): string | undefined {
  const full = e.annotations?.[CONTAINERD_NAME_ANNOTATION];
  if (full !== undefined) return full;
  const ref = e.annotations?.[REF_NAME_ANNOTATION];
  return ref !== undefined && /[:/]/.test(ref) ? ref : undefined;
}

function listEntries(entries: Descriptor[]): string {
  if (entries.length === 0) return 'it is empty';
  const names = entries.map((e, i) => `@${i}: ${entryName(e) ?? e.annotations?.[REF_NAME_ANNOTATION] ?? 'untagged'}`);
  return `it has ${names.join('; ')}`;
}

/** The entry whose image (or one of whose platform images) has `config`; manifests are read verified. */
async function findEntryByConfig(reader: OciLayoutSource, entries: Descriptor[], config: Digest): Promise<Descriptor | undefined> {
  const hasConfig = async (desc: Descriptor): Promise<boolean> => {
    try {
      const bytes = await reader.readBlob(desc);
      return parseManifest(bytes, desc.digest, desc.mediaType).config.digest === config;
    } catch {
      return false; // not a manifest, or not in the archive: not this entry
    }
  };
  for (const entry of entries) {
    if (isIndexMediaType(entry.mediaType)) {
      try {
        const index = parseIndex(await reader.readBlob(entry), entry.digest, entry.mediaType);
        for (const child of index.manifests) if (isManifestMediaType(child.mediaType) && (await hasConfig(child))) return entry;
      } catch {
        // an index we cannot read cannot be the one
      }
    } else if (await hasConfig(entry)) {
      return entry;
    }
  }
  return undefined;
}

/** Where a blob of a synthesised image comes from: a member of the archive, or bytes made here. */
type BlobOrigin = { member: string } | { bytes: Buffer };

/**
 * An image of a pre-Docker-25 archive. Its manifest does not exist in the archive, so one is synthesised from
 * manifest.json and the config: uncompressed layer files are named by their DiffID (which the config already
 * holds, so they need not be read now), gzip layer files by the sha256 of their bytes (read once, here).
 * Every blob read later is verified against these digests like any other source.
 */
class LegacyArchiveSource implements ImageSource {
  private constructor(
    private readonly files: TarFiles,
    readonly description: string,
    private readonly root: Descriptor,
    private readonly blobs: ReadonlyMap<Digest, BlobOrigin>,
  ) {}

  static async build(files: TarFiles, item: ManifestItem, description: string): Promise<LegacyArchiveSource> {
    const configBytes = await files.readFile(item.config, MAX_CONFIG_BYTES);
    const configWhere = files.describe(item.config);
    const config: Descriptor = { mediaType: MediaType.DockerConfig, digest: sha256Digest(configBytes), size: configBytes.length };
    const rootfs = new JsonReader(configWhere, parseJson(configBytes, configWhere)).field('rootfs');
    const diffIds = rootfs.field('diff_ids').optionalArray().map((d) => parseDigest(d.string(), `${configWhere}: ${d.path}`));
    if (diffIds.length !== item.layers.length) {
      throw new ImagegateError(
        'BAD_FORMAT',
        `${description}: manifest.json lists ${item.layers.length} layers, but the config ${item.config} has ${diffIds.length} diff_ids; the archive is corrupt, re-create it`,
      );
    }
    const blobs = new Map<Digest, BlobOrigin>([[config.digest, { member: item.config }]]);
    const layers: Descriptor[] = [];
    const known = new Map<string, Descriptor>();
    for (const [i, member] of item.layers.entries()) {
      let layer = known.get(member);
      if (layer === undefined) {
        layer = await describeLayer(files, member, diffIds[i]!, description);
        known.set(member, layer);
      }
      layers.push(layer);
      blobs.set(layer.digest, { member });
    }
    const manifestBytes = serialize({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers });
    const root: Descriptor = { mediaType: MediaType.DockerManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
    blobs.set(root.digest, { bytes: manifestBytes });
    return new LegacyArchiveSource(files, description, root, blobs);
  }

  async rootDescriptor(): Promise<Descriptor> {
    return this.root;
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const origin = this.blobs.get(desc.digest);
    if (origin === undefined) {
      throw new ImagegateError('NOT_FOUND', `${this.description} has no blob ${desc.digest} (${desc.mediaType}); it is not part of the selected image`);
    }
    const raw = 'bytes' in origin ? Readable.from([origin.bytes]) : await this.files.open(origin.member);
    return verifiedBlobStream(raw, desc);
  }

  readBlob(desc: Descriptor, limit = MAX_MANIFEST_BYTES): Promise<Buffer> {
    return readVerifiedBlob((d) => this.openBlob(d), desc, limit, this.description);
  }

  readManifest(desc: Descriptor): Promise<Buffer> {
    return this.readBlob(desc, MAX_MANIFEST_BYTES);
  }

  async close(): Promise<void> {
    await this.files.close();
  }
}

const GZIP_MAGIC = [0x1f, 0x8b];
const OTHER_COMPRESSIONS: Array<{ name: string; magic: number[] }> = [
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68] },
];

function startsWith(head: Buffer, magic: number[]): boolean {
  return magic.every((b, i) => head[i] === b);
}

async function describeLayer(files: TarFiles, member: string, diffId: Digest, description: string): Promise<Descriptor> {
  const size = files.size(member);
  const head = await files.head(member, 6);
  if (startsWith(head, GZIP_MAGIC)) {
    // The archive does not record the compressed digest, so it is computed: one streaming pass, no buffering.
    const hash = createHash('sha256');
    let seen = 0;
    for await (const chunk of await files.open(member)) {
      hash.update(chunk as Buffer);
      seen += (chunk as Buffer).length;
    }
    if (seen !== size) throw new ImagegateError('IO', `${files.describe(member)}: read ${seen} bytes, expected ${size}; was the archive changed while being read?`);
    return { mediaType: MediaType.DockerLayerGzip, digest: `sha256:${hash.digest('hex')}`, size };
  }
  const other = OTHER_COMPRESSIONS.find((c) => startsWith(head, c.magic));
  if (other !== undefined) {
    throw new ImagegateError(
      'UNSUPPORTED',
      `${description}: layer ${member} is ${other.name}-compressed, which Docker schema 2 manifests cannot describe; load the archive with docker and save it again, or convert it with skopeo`,
    );
  }
  return { mediaType: MediaType.DockerLayer, digest: diffId, size };
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

export async function openDockerArchiveDestination(file: string, ref: string | undefined, description: string): Promise<ImageDestination> {
  let name: ImageReference | undefined;
  if (ref !== undefined) {
    if (ref.startsWith('@')) {
      throw new ImagegateError('USAGE', `${description}: @N selects an image when reading; to write, name the image as docker-archive:FILE:NAME:TAG or leave it untagged`);
    }
    name = parseDockerRef(ref, description);
  }
  return new DockerArchiveDestination(description, await openStaging(file, description), name);
}

/**
 * Writes what `docker load` (and skopeo's docker-archive:) reads: the config as `<hex>.json`, one `<hex>.tar`
 * per layer with the blob's bytes as they are (docker load decompresses gzip layers itself), `manifest.json`
 * and `repositories`. The format has no place for layer annotations, so encrypted images are refused.
 */
class DockerArchiveDestination extends StagedArchiveDestination {
  readonly preservesLayerAnnotations = false;
  readonly canStoreIndex = false;

  constructor(
    description: string,
    staged: ArchiveStaging,
    private readonly name: ImageReference | undefined,
  ) {
    super(description, staged);
  }

  async commit(root: Descriptor): Promise<void> {
    if (!isManifestMediaType(root.mediaType)) {
      throw new ImagegateError(
        'DESTINATION',
        `${this.description}: a docker archive holds a single-platform image, but ${root.digest} is ${root.mediaType}; select one platform, or write to oci: or oci-archive: instead`,
      );
    }
    if (root.size > MAX_MANIFEST_BYTES) {
      throw new ImagegateError('DESTINATION', `${this.description}: manifest ${root.digest} declares ${root.size} bytes, more than any manifest should be`);
    }
    const manifest = parseManifest(await readFile(await this.stagedChecked(root)), `${this.description}: manifest ${root.digest}`, root.mediaType);
    if (manifest.layers.some((l) => isEncryptedMediaType(l.mediaType))) {
      throw new ImagegateError(
        'DESTINATION',
        `${this.description}: docker-archive cannot carry the key annotations of encrypted layers (containers/skopeo#982); write to oci: or oci-archive: instead`,
      );
    }
    const configName = `${digestHex(manifest.config.digest)}.json`;
    const members: ArchiveMember[] = [{ name: configName, file: await this.stagedChecked(manifest.config) }];
    const layerNames: string[] = [];
    const added = new Set<string>();
    for (const layer of manifest.layers) {
      const layerName = `${digestHex(layer.digest)}.tar`;
      layerNames.push(layerName);
      if (added.has(layerName)) continue; // the same layer twice in one image is stored once
      added.add(layerName);
      members.push({ name: layerName, file: await this.stagedChecked(layer) });
    }
    const repoTags = this.name !== undefined ? [familiarName(this.name)] : [];
    members.push({ name: 'manifest.json', bytes: Buffer.from(JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: layerNames }])) });
    const top = manifest.layers[manifest.layers.length - 1];
    if (this.name !== undefined && this.name.tag !== undefined && top !== undefined) {
      // `repositories` predates manifest.json; old docker versions still want it. It maps to the top layer.
      const repository = familiarName({ domain: this.name.domain, path: this.name.path });
      members.push({ name: 'repositories', bytes: Buffer.from(JSON.stringify({ [repository]: { [this.name.tag]: digestHex(top.digest) } })) });
    }
    await this.packIntoTarget(members);
  }

  private staged(blob: Descriptor): string {
    return path.join(this.staging, blobPath(blob));
  }

  private async stagedChecked(blob: Descriptor): Promise<string> {
    const file = this.staged(blob);
    const size = await stat(file).then(
      (s) => s.size,
      () => undefined,
    );
    if (size !== blob.size) {
      throw new ImagegateError('DESTINATION', `${this.description}: blob ${blob.digest} (${blob.mediaType}) was not written before commit; the copy is incomplete`);
    }
    return file;
  }
}
