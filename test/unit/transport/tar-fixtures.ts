/**
 * Tar and image fixtures for the archive transport tests, built in memory from bytes. Well-formed archives come
 * from tar-stream (an independent writer); the header variants tar-stream cannot produce (GNU long names,
 * base-256 sizes, PAX size records) are assembled block by block here.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import type { Digest } from '../../../src/image/digest.js';
import type { Descriptor } from '../../../src/image/descriptor.js';
import type { ImageDestination, ImageSource } from '../../../src/image/image.js';
import { parseManifest } from '../../../src/image/manifest.js';
import { ImagegateError } from '../../../src/errors.js';
import { expect } from 'vitest';

export interface TarEntry {
  name: string;
  content?: Buffer | string;
  type?: 'file' | 'symlink' | 'link' | 'directory';
  linkname?: string;
}

/** A tar archive written by tar-stream. */
export async function tarOf(entries: readonly TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of p) chunks.push(chunk as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mtime: new Date(0), ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') p.entry(header, Buffer.from(e.content ?? ''), (err) => (err ? reject(err) : resolve()));
      else p.entry(header, (err) => (err ? reject(err) : resolve())).end(undefined);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Every member of a tar with its type and content, read with tar-stream. */
export async function listTar(tar: Buffer): Promise<Map<string, { type: string; content: Buffer; linkname?: string }>> {
  const out = new Map<string, { type: string; content: Buffer; linkname?: string }>();
  const ex = extract();
  ex.end(tar);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const item: { type: string; content: Buffer; linkname?: string } = { type: entry.header.type, content: Buffer.concat(chunks) };
    if (entry.header.linkname) item.linkname = entry.header.linkname;
    out.set(entry.header.name, item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Hand-made tar blocks

export interface RawHeader {
  name: string;
  typeflag: string;
  size?: number;
  linkname?: string;
  prefix?: string;
  /** `ustar` (POSIX, the default), `gnu` (`ustar  \0`) or `v7` (no magic). */
  format?: 'ustar' | 'gnu' | 'v7';
  /** Store the size in GNU base-256 instead of octal. */
  base256?: boolean;
}

export function rawHeader(h: RawHeader): Buffer {
  const buf = Buffer.alloc(512);
  buf.write(h.name, 0, 100, 'utf8');
  buf.write('0000644\0', 100, 'latin1');
  buf.write('0000000\0', 108, 'latin1');
  buf.write('0000000\0', 116, 'latin1');
  const size = h.size ?? 0;
  if (h.base256) {
    buf[124] = 0x80;
    let n = BigInt(size);
    for (let i = 11; i > 0; i--) {
      buf[124 + i] = Number(n & 0xffn);
      n >>= 8n;
    }
  } else {
    buf.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  }
  buf.write('00000000000\0', 136, 'latin1');
  buf.write(h.typeflag, 156, 'latin1');
  if (h.linkname !== undefined) buf.write(h.linkname, 157, 100, 'utf8');
  const format = h.format ?? 'ustar';
  if (format === 'ustar') {
    buf.write('ustar\u000000', 257, 'latin1');
    if (h.prefix !== undefined) buf.write(h.prefix, 345, 155, 'utf8');
  } else if (format === 'gnu') {
    buf.write('ustar  \0', 257, 'latin1');
  }
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of buf) sum += b;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return buf;
}

/** Data padded to whole 512-byte blocks. */
export function blocks(data: Buffer | string): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

/** A PAX extended header body: records `<len> key=value\n` whose length counts itself. */
export function paxBody(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    parts.push(Buffer.from(`${len}${rest}`));
  }
  return Buffer.concat(parts);
}

export const END_OF_ARCHIVE = Buffer.alloc(1024);

// ---------------------------------------------------------------------------------------------------------------
// Images

export function sha256(bytes: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function hexOf(d: string): string {
  return d.slice(d.indexOf(':') + 1);
}

export interface TestLayer {
  /** The blob as stored (gzip or plain tar). */
  blob: Buffer;
  digest: Digest;
  diffId: Digest;
  mediaType: string;
}

export interface TestImage {
  config: Buffer;
  configDigest: Digest;
  layers: TestLayer[];
  manifest: Buffer;
  manifestDigest: Digest;
  root: Descriptor;
}

/** A small layer tar with one file, distinct per seed. */
async function layerTar(seed: string): Promise<Buffer> {
  return tarOf([{ name: `files/${seed}.txt`, content: `content of layer ${seed}\n`.repeat(20) }]);
}

export async function makeImage(
  specs: ReadonlyArray<{ seed: string; gzip?: boolean; mediaType?: string }>,
  manifestMediaType: 'oci' | 'docker' = 'oci',
): Promise<TestImage> {
  const layers: TestLayer[] = [];
  for (const s of specs) {
    const tar = await layerTar(s.seed);
    const blob = s.gzip ? gzipSync(tar) : tar;
    const oci = manifestMediaType === 'oci';
    const mediaType =
      s.mediaType ??
      (s.gzip
        ? oci
          ? 'application/vnd.oci.image.layer.v1.tar+gzip'
          : 'application/vnd.docker.image.rootfs.diff.tar.gzip'
        : oci
          ? 'application/vnd.oci.image.layer.v1.tar'
          : 'application/vnd.docker.image.rootfs.diff.tar');
    layers.push({ blob, digest: sha256(blob), diffId: sha256(tar), mediaType });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const configDigest = sha256(config);
  const oci = manifestMediaType === 'oci';
  const manifestJson = {
    schemaVersion: 2,
    mediaType: oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json',
    config: {
      mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
  };
  const manifest = Buffer.from(JSON.stringify(manifestJson));
  const manifestDigest = sha256(manifest);
  return {
    config,
    configDigest,
    layers,
    manifest,
    manifestDigest,
    root: { mediaType: manifestJson.mediaType, digest: manifestDigest, size: manifest.length },
  };
}

/** Blob files of `image` under `blobs/sha256/`, for building layouts and Docker >= 25 archives. */
export function layoutBlobs(image: TestImage): TarEntry[] {
  const seen = new Set<string>();
  const out: TarEntry[] = [];
  for (const [digest, content] of [
    [image.manifestDigest, image.manifest],
    [image.configDigest, image.config],
    ...image.layers.map((l) => [l.digest, l.blob] as const),
  ] as const) {
    if (seen.has(digest)) continue;
    seen.add(digest);
    out.push({ name: `blobs/sha256/${hexOf(digest)}`, content });
  }
  return out;
}

/** An oci-archive of `image`, tagged `tag`. */
export async function ociArchiveOf(image: TestImage, tag: string | undefined): Promise<Buffer> {
  const entry = { ...image.root, ...(tag !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': tag } } : {}) };
  return tarOf([
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }) },
    ...layoutBlobs(image),
  ]);
}

/** Copies `root` and everything under it (a single manifest) from a source to a destination, then commits. */
export async function copyImage(src: ImageSource, dest: ImageDestination): Promise<Descriptor> {
  const root = await src.rootDescriptor();
  const bytes = await src.readBlob(root);
  const manifest = parseManifest(bytes, 'test', root.mediaType);
  for (const blob of [manifest.config, ...manifest.layers]) {
    await dest.putBlob(await src.openBlob(blob), { digest: blob.digest, size: blob.size });
  }
  await dest.putBlob(Readable.from([bytes]), { digest: root.digest, size: root.size });
  await dest.commit(root);
  return root;
}

/** Copies an in-memory image to a destination, then commits. */
export async function putImage(image: TestImage, dest: ImageDestination): Promise<void> {
  await dest.putBlob(Readable.from([image.config]));
  for (const l of image.layers) await dest.putBlob(Readable.from([l.blob]));
  await dest.putBlob(Readable.from([image.manifest]));
  await dest.commit(image.root);
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Awaits `p`, expecting it to fail with an ImagegateError, and returns that error for further checks. */
export async function failure(p: Promise<unknown>): Promise<ImagegateError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ImagegateError);
    return e as ImagegateError;
  }
  throw new Error('expected a failure');
}
