import { describe, expect, it } from 'vitest';
import { documentKind, parseIndex, parseManifest } from '../../../src/image/manifest.js';
import { decryptedMediaType, encryptedMediaType, isEncryptableLayerMediaType, MediaType } from '../../../src/image/media-types.js';
import { parseDigest } from '../../../src/image/digest.js';

const D = `sha256:${'0'.repeat(64)}`;
const manifest = (over: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: D, size: 2 },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: D, size: 10, annotations: { a: 'b' } }],
      annotations: { keep: 'me' },
      ...over,
    }),
  );

describe('manifests and indexes', () => {
  it('parses an OCI manifest and keeps fields it does not model', () => {
    const m = parseManifest(manifest(), 'test');
    expect(m.layers[0]!.annotations).toEqual({ a: 'b' });
    expect(m.json.annotations).toEqual({ keep: 'me' });
  });

  it('names the bad field and quotes the bad value', () => {
    expect(() => parseManifest(manifest({ layers: [{ mediaType: 'x', digest: 'sha256:zz', size: 1 }] }), 'm.json')).toThrow(
      'm.json: $.layers[0].digest must be "sha256:" and 64 lowercase hex digits, got "sha256:zz"',
    );
    expect(() => parseManifest(manifest({ schemaVersion: 1 }), 'm.json')).toThrow(/schema 1 images are not supported/);
    expect(() => parseManifest(manifest({ config: { mediaType: 'x', digest: D, size: -1 } }), 'm.json')).toThrow(/\$\.config\.size must not be negative/);
    expect(() => parseManifest(Buffer.from('{'), 'm.json')).toThrow(/m\.json: not valid JSON/);
  });

  it('requires mediaType in Docker schema 2 manifests but not in OCI ones', () => {
    const noMt = JSON.parse(manifest().toString()) as Record<string, unknown>;
    delete noMt.mediaType;
    expect(parseManifest(Buffer.from(JSON.stringify(noMt)), 't').mediaType).toBe(MediaType.OciManifest);
    expect(() => parseManifest(Buffer.from(JSON.stringify(noMt)), 't', MediaType.DockerManifest)).toThrow(/required in a Docker schema 2 manifest/);
  });

  it('tells manifests from indexes by media type or by shape', () => {
    expect(documentKind(manifest(), undefined, 't')).toBe('manifest');
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    expect(documentKind(idx, undefined, 't')).toBe('index');
    expect(parseIndex(idx, 't').mediaType).toBe(MediaType.OciIndex);
  });

  it('refuses oversized documents before parsing them', () => {
    expect(() => parseManifest(Buffer.alloc(5 * 1024 * 1024, 32), 'big')).toThrow(/larger than any manifest/);
  });
});

describe('media types', () => {
  it('appends +encrypted after the compression suffix and maps Docker types to OCI', () => {
    expect(encryptedMediaType(MediaType.OciLayerGzip)).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
    expect(encryptedMediaType(MediaType.DockerLayerGzip)).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
    expect(encryptedMediaType(MediaType.DockerLayer)).toBe('application/vnd.oci.image.layer.v1.tar+encrypted');
    expect(decryptedMediaType('application/vnd.oci.image.layer.v1.tar+zstd+encrypted')).toBe(MediaType.OciLayerZstd);
    expect(isEncryptableLayerMediaType('application/vnd.in-toto+json')).toBe(false);
    expect(isEncryptableLayerMediaType(MediaType.DockerForeignLayerGzip)).toBe(true);
  });

  it('validates digests', () => {
    expect(parseDigest(D)).toBe(D);
    expect(() => parseDigest('sha256:ABC')).toThrow(/64 lowercase hex/);
  });
});
