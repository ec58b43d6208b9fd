/**
 * Builds container images for tests, in-process and from bytes: layer tars, OCI image layouts (single image or
 * multi-platform index, OCI or Docker schema 2 media types) and one-big-layer layouts for benchmarks.
 *
 * Everything here is deterministic (fixed mtimes, seeded pseudo-random contents, no timestamps in gzip headers),
 * so a test can rebuild the same bytes and compare. It deliberately does not use src/: a fixture builder that
 * shares code with the thing under test would hide the bugs the tests are there to find.
 */
import { createCipheriv, createHash, randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { pack, type Pack } from 'tar-stream';

/** The writable a tar-stream entry returns. */
type Sink = ReturnType<Pack['entry']>;

// ---------------------------------------------------------------------------------------------------------------
// Types

export interface LayerFile {
  /** Path inside the layer, relative (no leading `/`), e.g. `etc/app.conf`. */
  path: string;
  content: Buffer | string;
  /** Unix permission bits; 0o644 when omitted. */
  mode?: number;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export type LayerCompression = 'gzip' | 'none';
export type ImageFormat = 'oci' | 'docker';

export interface LayerSpec {
  /** Files of the layer; ignored when `tar` is given. */
  files?: LayerFile[];
  /** A ready-made uncompressed tar, for tests that need entries `makeLayerTar` cannot express. */
  tar?: Buffer;
  /** `gzip` (the default) or `none` (an uncompressed tar blob). */
  compression?: LayerCompression;
}

export interface ImageSpec {
  /** linux/amd64 when omitted. */
  platform?: Platform;
  layers: LayerSpec[];
}

export interface BuildLayoutOptions {
  /** Value of `org.opencontainers.image.ref.name` in index.json; `latest` when omitted. */
  tag?: string;
  /** One image → index.json points at its manifest; several → index.json points at an image index of them. */
  images: ImageSpec[];
  /** Media types: `oci` (the default) or Docker schema 2. index.json itself is always an OCI index. */
  format?: ImageFormat;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface BuiltLayer {
  mediaType: string;
  /** Digest of the blob as stored (compressed when the layer is compressed). */
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar, as listed in the config's `rootfs.diff_ids`. */
  diffId: string;
}

export interface BuiltImage {
  platform: Platform;
  manifest: Descriptor;
  config: Descriptor;
  layers: BuiltLayer[];
}

export interface BuiltLayout {
  dir: string;
  tag: string;
  format: ImageFormat;
  /** What index.json points at for `tag`: the single image's manifest, or the image index. */
  root: Descriptor;
  /** The image index (manifest list for `docker`), when several images were built. */
  index?: Descriptor;
  images: BuiltImage[];
}

// ---------------------------------------------------------------------------------------------------------------
// Constants

/** Fixed times: the same inputs must give the same digests in every run. */
const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');
const FIXED_CREATED = '2024-01-01T00:00:00Z';
/** Tar header fields every generated file shares: a plain file owned by root, with the fixed mtime. */
const FILE_HEADER = { type: 'file', mtime: FIXED_MTIME, uid: 0, gid: 0 } as const;

const REF_NAME = 'org.opencontainers.image.ref.name';
const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface MediaTypes {
  manifest: string;
  index: string;
  config: string;
  layer: Record<LayerCompression, string>;
}

const MEDIA_TYPES: Record<ImageFormat, MediaTypes> = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: OCI_INDEX,
    config: 'application/vnd.oci.image.config.v1+json',
    layer: { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', none: 'application/vnd.oci.image.layer.v1.tar' },
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: {
      gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      none: 'application/vnd.docker.image.rootfs.diff.tar',
    },
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Pseudo-random contents

/** Big enough that a GiB is ~1000 callbacks, small enough to stay off the memory graph. */
const RANDOM_CHUNK = 1024 * 1024;

/**
 * The keystream of AES-256-CTR keyed with sha256(seed): a seeded, reproducible, incompressible byte stream.
 * AES-CTR rather than chained sha256 blocks because it runs at GB/s, which a 1 GiB benchmark fixture needs.
 */
function keystream(seed: number | string) {
  const key = createHash('sha256').update(`imagegate-test-data:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
}

/** `length` reproducible pseudo-random bytes for `seed`, in memory: for small fixtures. */
function pseudoRandomBytes(seed: number | string, length: number): Buffer {
  const cipher = keystream(seed);
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** The same bytes as `pseudoRandomBytes(seed, length)`, streamed in 1 MiB chunks: for big fixtures. */
function pseudoRandomStream(seed: number | string, length: number): Readable {
  const cipher = keystream(seed);
  const zeros = Buffer.alloc(RANDOM_CHUNK);
  let remaining = length;
  return new Readable({
    highWaterMark: RANDOM_CHUNK,
    read() {
      if (remaining === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(remaining, RANDOM_CHUNK);
      remaining -= n;
      this.push(cipher.update(n === RANDOM_CHUNK ? zeros : zeros.subarray(0, n)));
    },
  });
}

/** `count` files of `size` pseudo-random bytes each, under `data/`; the same seed gives the same files. */
export function randomLayerFiles(seed: number, count: number, size: number): LayerFile[] {
  return Array.from({ length: count }, (_, i) => ({
    path: `data/${seed}-${String(i).padStart(3, '0')}.bin`,
    content: pseudoRandomBytes(`${seed}/${i}`, size),
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Layer tars

function addEntry(archive: Pack, file: LayerFile): Promise<void> {
  const content = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
  return new Promise((resolve, reject) => {
    archive.entry(
      { ...FILE_HEADER, name: file.path, size: content.length, mode: file.mode ?? 0o644 },
      content,
      (err) => (err ? reject(err) : resolve()),
    );
  });
}

/**
 * An uncompressed tar of exactly `files`, in order, with fixed mtimes and root ownership. Parent directories are
 * not added: unpackers create them, and tests asserting on entries get exactly what they listed.
 */
export async function makeLayerTar(files: readonly LayerFile[]): Promise<Buffer> {
  const archive = pack();
  // Consume while adding: the pack applies backpressure, so entries would stall if nobody read.
  const collected = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of archive) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const file of files) await addEntry(archive, file);
  archive.finalize();
  return collected;
}

// ---------------------------------------------------------------------------------------------------------------
// Blobs and layout files

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blobPath(layoutDir: string, digest: string): string {
  // Validated so a digest read from a (possibly hostile) manifest cannot point outside blobs/.
  const m = /^([a-z0-9]+):([a-f0-9]{32,128})$/.exec(digest);
  if (!m) throw new Error(`not a digest: ${JSON.stringify(digest)}`);
  return path.join(layoutDir, 'blobs', m[1] as string, m[2] as string);
}

async function writeBlob(layoutDir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  const file = blobPath(layoutDir, digest);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data);
  return { digest, size: data.length };
}

/** JSON exactly as hashed: the descriptor must describe the bytes on disk, so serialise once. */
async function writeJsonBlob(layoutDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const { digest, size } = await writeBlob(layoutDir, Buffer.from(JSON.stringify(value)));
  return { mediaType, digest, size };
}

/** A minimal but valid image config: what runtimes and skopeo read (platform, rootfs, history, Cmd). */
function imageConfig(platform: Platform, diffIds: string[]) {
  return {
    created: FIXED_CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: FIXED_CREATED, created_by: `imagegate test layer ${i}` })),
  };
}

async function writeImage(
  layoutDir: string,
  types: MediaTypes,
  platform: Platform,
  layers: BuiltLayer[],
): Promise<BuiltImage> {
  const config = await writeJsonBlob(
    layoutDir,
    types.config,
    imageConfig(
      platform,
      layers.map((l) => l.diffId),
    ),
  );
  const manifest = await writeJsonBlob(layoutDir, types.manifest, {
    schemaVersion: 2,
    mediaType: types.manifest,
    config,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  });
  return { platform, manifest, config, layers };
}

/**
 * Writes oci-layout and points `tag` in index.json at `root`. Other tags already in index.json are kept, so
 * several builds into one directory give one layout with several tags.
 */
async function tagRoot(layoutDir: string, tag: string, root: Descriptor): Promise<void> {
  await writeFile(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  let others: Descriptor[] = [];
  try {
    others = (await readIndexJson(layoutDir)).manifests.filter((d) => d.annotations?.[REF_NAME] !== tag);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const entry: Descriptor = {
    mediaType: root.mediaType,
    digest: root.digest,
    size: root.size,
    annotations: { [REF_NAME]: tag },
  };
  const index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...others, entry] };
  await writeFile(path.join(layoutDir, 'index.json'), JSON.stringify(index));
}

/** Writes the images' configs and manifests, the image index when there are several, and index.json. */
async function finishLayout(
  dir: string,
  tag: string,
  format: ImageFormat,
  images: Array<{ platform: Platform; layers: BuiltLayer[] }>,
): Promise<BuiltLayout> {
  const types = MEDIA_TYPES[format];
  const built: BuiltImage[] = [];
  for (const image of images) built.push(await writeImage(dir, types, image.platform, image.layers));

  let index: Descriptor | undefined;
  if (built.length > 1) {
    index = await writeJsonBlob(dir, types.index, {
      schemaVersion: 2,
      mediaType: types.index,
      manifests: built.map((b) => ({ ...b.manifest, platform: b.platform })),
    });
  }
  const root = index ?? built[0]?.manifest;
  if (!root) throw new Error('an image layout needs at least one image');
  await tagRoot(dir, tag, root);
  return { dir, tag, format, root, ...(index ? { index } : {}), images: built };
}

async function writeLayer(dir: string, types: MediaTypes, spec: LayerSpec): Promise<BuiltLayer> {
  const tarBytes = spec.tar ?? (await makeLayerTar(spec.files ?? []));
  const compression = spec.compression ?? 'gzip';
  // zlib writes mtime 0 and no file name into the gzip header, so the same tar always gives the same blob.
  const blob = compression === 'gzip' ? gzipSync(tarBytes) : tarBytes;
  const { digest, size } = await writeBlob(dir, blob);
  return { mediaType: types.layer[compression], digest, size, diffId: sha256(tarBytes) };
}

/**
 * Writes an OCI image layout into `dir` (created if missing): one image tagged `tag`, or a multi-platform image
 * index when `images` has several entries. Returns every descriptor written, so tests can assert on them.
 */
export async function buildOciLayout(dir: string, opts: BuildLayoutOptions): Promise<BuiltLayout> {
  const format = opts.format ?? 'oci';
  const types = MEDIA_TYPES[format];
  await mkdir(dir, { recursive: true });
  const images: Array<{ platform: Platform; layers: BuiltLayer[] }> = [];
  for (const image of opts.images) {
    const layers: BuiltLayer[] = [];
    for (const layer of image.layers) layers.push(await writeLayer(dir, types, layer));
    images.push({ platform: image.platform ?? DEFAULT_PLATFORM, layers });
  }
  return finishLayout(dir, opts.tag ?? 'latest', format, images);
}

// ---------------------------------------------------------------------------------------------------------------
// One big layer, streamed

/** Feeds every chunk to `hash` and counts it, passing the bytes through unchanged. */
class Measure extends Transform {
  size = 0;
  readonly hash: Hash;
  // No parameter properties: this file stays erasable-only so plain `node` can load it (benchmarks).
  constructor(hash: Hash) {
    super();
    this.hash = hash;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/**
 * Re-cuts a byte stream into chunks of exactly `size` bytes (the last may be shorter). zlib's stored blocks end
 * where its input and output buffers end, so the gzip bytes, and with them the layer digest, would otherwise
 * depend on how upstream streams happened to batch their chunks.
 */
class FixedChunks extends Transform {
  readonly size: number;
  private pending: Buffer;
  private filled = 0;
  constructor(size: number) {
    super();
    this.size = size;
    this.pending = Buffer.allocUnsafe(size);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      const n = chunk.copy(this.pending, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === this.size) {
        this.push(this.pending);
        this.pending = Buffer.allocUnsafe(this.size);
        this.filled = 0;
      }
    }
    done();
  }
  override _flush(done: TransformCallback): void {
    done(null, this.filled > 0 ? this.pending.subarray(0, this.filled) : undefined);
  }
}

/** Writes `source` into a tar-stream entry with backpressure (the entry is a streamx stream, not a core one). */
async function feed(source: Readable, entry: Sink): Promise<void> {
  for await (const chunk of source) {
    if (!entry.write(chunk as Buffer)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          entry.off('error', onError);
          resolve();
        };
        const onError = (err: Error) => {
          entry.off('drain', onDrain);
          reject(err);
        };
        entry.once('drain', onDrain);
        entry.once('error', onError);
      });
    }
  }
  // streamx's typings make end's argument mandatory; null means "no last chunk".
  entry.end(null);
}

export interface BigLayerOptions {
  /** `gzip-stored`: gzip at level 0 (stored blocks), so skopeo keeps the blob and no test time goes to deflate. */
  compression: 'gzip-stored' | 'none';
  tag?: string;
  format?: ImageFormat;
  /** Seed of the file's contents; 1 when omitted. Layer i uses seed + i. */
  seed?: number;
  /** Number of layers, each `bytes` long with different contents; 1 when omitted. */
  layers?: number;
}

/**
 * An image whose layers are tars each holding one `bytes`-long pseudo-random file (`data/big.bin`), for
 * benchmarks. Each layer is generated, hashed (diff_id and blob digest) and written in one streamed pass, so memory
 * stays flat however big it is; the blob is renamed to its digest once known.
 */
export async function writeBigLayerLayout(dir: string, bytes: number, opts: BigLayerOptions): Promise<BuiltLayout> {
  const format = opts.format ?? 'oci';
  const layers: BuiltLayer[] = [];
  for (let i = 0; i < (opts.layers ?? 1); i++) layers.push(await writeBigLayer(dir, bytes, (opts.seed ?? 1) + i, opts.compression, format));
  return finishLayout(dir, opts.tag ?? 'latest', format, [{ platform: DEFAULT_PLATFORM, layers }]);
}

async function writeBigLayer(dir: string, bytes: number, seed: number, compressionOption: BigLayerOptions['compression'], format: ImageFormat): Promise<BuiltLayer> {
  const types = MEDIA_TYPES[format];
  const opts = { compression: compressionOption, seed };
  const blobsDir = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const partial = path.join(blobsDir, `.partial-${randomUUID()}`);

  const archive = pack();
  const tarMeasure = new Measure(createHash('sha256'));
  const blobMeasure = new Measure(createHash('sha256'));
  const stages: Transform[] = [tarMeasure];
  if (opts.compression === 'gzip-stored') {
    stages.push(new FixedChunks(RANDOM_CHUNK), createGzip({ level: 0, chunkSize: RANDOM_CHUNK }));
  }
  stages.push(blobMeasure);

  try {
    // Readable.from wraps tar-stream's streamx stream in a core stream, so pipeline's error handling applies.
    const written = pipeline([Readable.from(archive, { objectMode: false }), ...stages, createWriteStream(partial)]);
    const entryDone = new Promise<void>((resolve, reject) => {
      const entry = archive.entry(
        { ...FILE_HEADER, name: 'data/big.bin', size: bytes, mode: 0o644 },
        (err) => (err ? reject(err) : resolve()),
      );
      feed(pseudoRandomStream(opts.seed ?? 1, bytes), entry).catch(reject);
    });
    // If writing fails, the entry never drains: tear the pack down so the feeding side fails too.
    written.catch((e: unknown) => archive.destroy(e instanceof Error ? e : new Error(String(e))));
    await entryDone;
    archive.finalize();
    await written;
  } catch (e) {
    await rm(partial, { force: true });
    throw e;
  }

  const digest = blobMeasure.digest();
  await rename(partial, blobPath(dir, digest));
  const compression: LayerCompression = opts.compression === 'none' ? 'none' : 'gzip';
  return {
    mediaType: types.layer[compression],
    digest,
    size: blobMeasure.size,
    diffId: tarMeasure.digest(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading layouts back (for assertions)

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDescriptor(value: unknown): value is Descriptor {
  return (
    isRecord(value) &&
    typeof value.mediaType === 'string' &&
    typeof value.digest === 'string' &&
    typeof value.size === 'number'
  );
}

function asIndex(value: unknown, what: string): ImageIndex {
  if (isRecord(value) && Array.isArray(value.manifests) && value.manifests.every(isDescriptor)) {
    return value as unknown as ImageIndex;
  }
  throw new Error(`${what} is not an image index`);
}

function asManifest(value: unknown, what: string): ImageManifest {
  const layers = isRecord(value) ? value.layers : undefined;
  if (isRecord(value) && isDescriptor(value.config) && Array.isArray(layers) && layers.every(isDescriptor)) {
    return value as unknown as ImageManifest;
  }
  throw new Error(`${what} is not an image manifest`);
}

/** The bytes of a blob, e.g. a layer, by digest. */
export async function readLayerBlob(layoutDir: string, digest: string): Promise<Buffer> {
  return readFile(blobPath(layoutDir, digest));
}

/** A blob parsed as JSON (a manifest, index or config). */
export async function readBlobJson(layoutDir: string, digest: string): Promise<unknown> {
  return JSON.parse((await readLayerBlob(layoutDir, digest)).toString('utf8')) as unknown;
}

/** The layout's index.json. */
export async function readIndexJson(layoutDir: string): Promise<ImageIndex> {
  const file = path.join(layoutDir, 'index.json');
  return asIndex(JSON.parse(await readFile(file, 'utf8')) as unknown, file);
}

/** The index.json entry for `tag`, or the only entry when `tag` is omitted. */
export async function resolveTag(layoutDir: string, tag?: string): Promise<Descriptor> {
  const { manifests } = await readIndexJson(layoutDir);
  const found =
    tag === undefined
      ? manifests.length === 1
        ? manifests[0]
        : undefined
      : manifests.find((d) => d.annotations?.[REF_NAME] === tag);
  if (!found) {
    const tags = manifests.map((d) => d.annotations?.[REF_NAME] ?? '(untagged)').join(', ');
    const wanted = tag === undefined ? 'single entry' : `tag ${tag}`;
    throw new Error(`${layoutDir}: no ${wanted} in index.json (has ${tags})`);
  }
  return found;
}

function samePlatform(a: Platform | undefined, b: Platform): boolean {
  return (
    a !== undefined &&
    a.os === b.os &&
    a.architecture === b.architecture &&
    (b.variant === undefined || a.variant === b.variant)
  );
}

/**
 * The image manifest `tag` points at. When it points at an image index, `platform` picks the manifest (it may be
 * omitted only if the index has a single entry).
 */
export async function readManifestFor(layoutDir: string, tag?: string, platform?: Platform): Promise<ImageManifest> {
  let desc = await resolveTag(layoutDir, tag);
  const root = await readBlobJson(layoutDir, desc.digest);
  if (isRecord(root) && Array.isArray(root.manifests)) {
    const index = asIndex(root, desc.digest);
    const picked =
      platform === undefined
        ? index.manifests.length === 1
          ? index.manifests[0]
          : undefined
        : index.manifests.find((d) => samePlatform(d.platform, platform));
    if (!picked) {
      const have = index.manifests.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : '?'));
      throw new Error(`${layoutDir}: index ${desc.digest} needs a platform to pick from ${have.join(', ')}`);
    }
    desc = picked;
    return asManifest(await readBlobJson(layoutDir, desc.digest), desc.digest);
  }
  return asManifest(root, desc.digest);
}

/** True when the blob exists; for checking that a layout is complete. */
export async function hasBlob(layoutDir: string, digest: string): Promise<boolean> {
  try {
    await stat(blobPath(layoutDir, digest));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
