import { ImagegateError } from '../errors.js';
import { readDescriptor, type Descriptor } from './descriptor.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from './media-types.js';
import { JsonReader, parseJson, type JsonObject } from './validate.js';

/**
 * An image manifest (OCI or Docker schema 2). `json` is the whole parsed document, so fields this code does not
 * model (annotations, subject, artifactType, vendor extensions) are kept when a manifest is rewritten.
 */
export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  json: JsonObject;
}

/** An image index (OCI) or manifest list (Docker schema 2). */
export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
  json: JsonObject;
}

/** Manifests are small documents; anything this large is not a manifest and is refused before parsing. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Decides whether a document is a manifest or an index. The descriptor's media type is authoritative when it
 * is specific; OCI documents may omit `mediaType`, so the shape decides then.
 */
export function documentKind(bytes: Uint8Array, declaredMediaType: string | undefined, where: string): 'manifest' | 'index' {
  if (declaredMediaType !== undefined && isManifestMediaType(declaredMediaType)) return 'manifest';
  if (declaredMediaType !== undefined && isIndexMediaType(declaredMediaType)) return 'index';
  const r = new JsonReader(where, parseJson(bytes, where));
  const mt = r.field('mediaType').optionalString();
  if (mt !== undefined && isManifestMediaType(mt)) return 'manifest';
  if (mt !== undefined && isIndexMediaType(mt)) return 'index';
  if (r.has('manifests')) return 'index';
  if (r.has('layers') || r.has('config')) return 'manifest';
  throw new ImagegateError(
    'UNSUPPORTED',
    `${where}: media type ${JSON.stringify(declaredMediaType ?? mt)} is neither an image manifest nor an index`,
  );
}

export function parseManifest(bytes: Uint8Array, where: string, declaredMediaType?: string): ImageManifest {
  checkSize(bytes, where);
  const r = new JsonReader(where, parseJson(bytes, where));
  const json = r.object();
  const schema = r.field('schemaVersion').integer();
  if (schema !== 2) r.field('schemaVersion').fail(`must be 2, got ${schema}; schema 1 images are not supported, convert them with skopeo first`);
  const mediaType = r.field('mediaType').optionalString() ?? declaredMediaType ?? MediaType.OciManifest;
  if (!isManifestMediaType(mediaType)) r.field('mediaType').fail(`must be an image manifest type, got ${JSON.stringify(mediaType)}`);
  if (mediaType === MediaType.DockerManifest && !r.has('mediaType')) {
    r.field('mediaType').fail('is required in a Docker schema 2 manifest');
  }
  const config = readDescriptor(r.field('config'));
  const layers = r.field('layers').array().map(readDescriptor);
  return { mediaType, config, layers, json };
}

export function parseIndex(bytes: Uint8Array, where: string, declaredMediaType?: string): ImageIndex {
  checkSize(bytes, where);
  const r = new JsonReader(where, parseJson(bytes, where));
  const json = r.object();
  const schema = r.field('schemaVersion').integer();
  if (schema !== 2) r.field('schemaVersion').fail(`must be 2, got ${schema}`);
  const mediaType = r.field('mediaType').optionalString() ?? declaredMediaType ?? MediaType.OciIndex;
  if (!isIndexMediaType(mediaType)) r.field('mediaType').fail(`must be an image index type, got ${JSON.stringify(mediaType)}`);
  const manifests = r.field('manifests').array().map(readDescriptor);
  return { mediaType, manifests, json };
}

function checkSize(bytes: Uint8Array, where: string): void {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new ImagegateError('BAD_FORMAT', `${where}: ${bytes.length} bytes is larger than any manifest should be (limit ${MAX_MANIFEST_BYTES})`);
  }
}

/** Serialises a manifest or index the way registries and skopeo expect: compact JSON, UTF-8. */
export function serialize(json: JsonObject): Buffer {
  return Buffer.from(JSON.stringify(json), 'utf8');
}
