import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import type { Descriptor } from './descriptor.js';
import type { ImageIndex, ImageManifest } from './manifest.js';

/**
 * The image model every transport yields and every op transforms. An image is a tree: an index points at
 * manifests (or further indexes), a manifest points at a config and layers. Manifests and indexes are held
 * in memory with their exact bytes; configs and layers are streamed on demand from the source that holds them.
 */
export type ImageNode = ManifestNode | IndexNode | OpaqueNode;

export interface ManifestNode {
  kind: 'manifest';
  descriptor: Descriptor;
  bytes: Buffer;
  manifest: ImageManifest;
}

export interface IndexNode {
  kind: 'index';
  descriptor: Descriptor;
  bytes: Buffer;
  index: ImageIndex;
  children: ImageNode[];
}

/** Something an index points at that is not an image (an artifact, a signature); copied byte for byte. */
export interface OpaqueNode {
  kind: 'opaque';
  descriptor: Descriptor;
}

/** Read access to the blobs of one image. Every read is checked against the descriptor that names it. */
export interface BlobReader {
  /** Streams a blob; the stream errors at its end if the bytes do not match the descriptor's digest and size. */
  openBlob(desc: Descriptor): Promise<Readable>;
  /** Reads a small blob (a manifest or config) whole, verified; refuses blobs larger than `limit` bytes. */
  readBlob(desc: Descriptor, limit?: number): Promise<Buffer>;
  /**
   * Reads a manifest or index, or anything else an index lists, whole and verified. Layouts keep these as blobs;
   * registries serve them from a separate endpoint.
   */
  readManifest(desc: Descriptor): Promise<Buffer>;
}

/** Where an image comes from. */
export interface ImageSource extends BlobReader {
  /** How the user named it, e.g. `oci:./app:1.0`; used in messages. */
  readonly description: string;
  /** The descriptor of the top-level manifest or index that the reference selects. */
  rootDescriptor(): Promise<Descriptor>;
  close(): Promise<void>;
}

export interface StoredBlob {
  digest: Digest;
  size: number;
}

/**
 * Where an image goes. Writes are staged: nothing is visible at the destination until `commit`, and `abort`
 * removes everything staged, so a failure (a wrong key, a tampered layer) never leaves a partial image behind.
 */
export interface ImageDestination {
  readonly description: string;
  /**
   * Whether layer descriptors keep their annotations here. docker-archive drops them, and with them an encrypted
   * layer's wrapped keys, so an encrypted image written there could never be decrypted.
   */
  readonly preservesLayerAnnotations: boolean;
  /** False for formats that hold a single image and no index (docker-archive). */
  readonly canStoreIndex: boolean;
  /**
   * True when the destination already holds this blob, or obtained it from `source` without the bytes passing
   * through us (a registry's cross-repository mount), so the copy can skip reading it.
   */
  reuseBlob(blob: StoredBlob, source: ImageSource): Promise<boolean>;
  /** Streams a blob into the staging area; digest and size are computed on the way and checked against `expected`. */
  putBlob(content: Readable, expected?: StoredBlob): Promise<StoredBlob>;
  /** Stores a manifest or index (anything an index lists) byte for byte; `mediaType` is its declared type. */
  putManifest(bytes: Buffer, mediaType: string): Promise<StoredBlob>;
  /** Makes `root` (already put with `putManifest`) the image this destination names. */
  commit(root: Descriptor): Promise<void>;
  /** Discards everything staged. Safe to call after a failed or successful commit. */
  abort(): Promise<void>;
}
