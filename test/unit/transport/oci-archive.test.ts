import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { testTempDir } from '../../support/tools.js';
import { openOciArchiveDestination, openOciArchiveSource } from '../../../src/transport/oci-archive.js';
import { collect, copyImage, hexOf, layoutBlobs, listTar, makeImage, ociArchiveOf, putImage, sha256, tarOf, failure } from './tar-fixtures.js';

/** A fresh directory per test (removed afterwards), so leftovers such as staging dirs can be checked for. */
const testDir = () => testTempDir('imagegate-archive-');

describe('oci-archive source', () => {
  it('reads an image by tag and verifies every blob it streams', async () => {
    const d = await testDir();
    const image = await makeImage([{ seed: 'a', gzip: true }, { seed: 'b' }]);
    const file = path.join(d, 'img.tar');
    await writeFile(file, await ociArchiveOf(image, '1.0'));
    const src = await openOciArchiveSource(file, '1.0', `oci-archive:${file}:1.0`);
    try {
      const root = await src.rootDescriptor();
      expect(root.digest).toBe(image.manifestDigest);
      expect((await src.readBlob(root)).equals(image.manifest)).toBe(true);
      for (const l of image.layers) {
        const got = await collect(await src.openBlob({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length }));
        expect(got.equals(l.blob)).toBe(true);
      }
    } finally {
      await src.close();
    }
    const untagged = await openOciArchiveSource(file, undefined, `oci-archive:${file}`);
    expect((await untagged.rootDescriptor()).digest).toBe(image.manifestDigest);
    await untagged.close();
    const wrongTag = await openOciArchiveSource(file, '2.0', `oci-archive:${file}:2.0`);
    expect((await failure(wrongTag.rootDescriptor())).code).toBe('NOT_FOUND');
    await wrongTag.close();
  });

  it('fails a blob whose content does not match its digest', async () => {
    const d = await testDir();
    const image = await makeImage([{ seed: 'good' }]);
    const layer = image.layers[0]!;
    // Same name and size, different bytes: only hashing can tell.
    const tampered = Buffer.from(layer.blob);
    tampered[tampered.length - 1024] = tampered[tampered.length - 1024]! ^ 0xff;
    const entries = layoutBlobs(image).map((e) => (e.name === `blobs/sha256/${hexOf(layer.digest)}` ? { ...e, content: tampered } : e));
    const file = path.join(d, 'tampered.tar');
    await writeFile(
      file,
      await tarOf([
        { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
        { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [image.root] }) },
        ...entries,
      ]),
    );
    const src = await openOciArchiveSource(file, undefined, `oci-archive:${file}`);
    try {
      const e = await failure(collect(await src.openBlob({ mediaType: layer.mediaType, digest: layer.digest, size: layer.blob.length })));
      expect(e.code).toBe('DIGEST_MISMATCH');
    } finally {
      await src.close();
    }
  });

  it('points docker save output at docker-archive: and refuses compressed archives', async () => {
    const d = await testDir();
    const docker = path.join(d, 'docker.tar');
    await writeFile(docker, await tarOf([{ name: 'manifest.json', content: '[]' }]));
    const e = await failure(openOciArchiveSource(docker, undefined, `oci-archive:${docker}`));
    expect(e.code).toBe('BAD_FORMAT');
    expect(e.message).toContain('docker-archive:');
    const gz = path.join(d, 'img.tar.gz');
    await writeFile(gz, gzipSync(await ociArchiveOf(await makeImage([{ seed: 'z' }]), 'x')));
    const g = await failure(openOciArchiveSource(gz, undefined, `oci-archive:${gz}`));
    expect(g.code).toBe('BAD_FORMAT');
    expect(g.message).toContain('decompress');
    expect((await failure(openOciArchiveSource(path.join(d, 'missing.tar'), undefined, 'x'))).code).toBe('NOT_FOUND');
  });
});

describe('oci-archive destination', () => {
  it('round-trips: write an archive, read it back, blob for blob', async () => {
    const d = await testDir();
    const image = await makeImage([{ seed: 'one', gzip: true }, { seed: 'two' }, { seed: 'one', gzip: true }]);
    const file = path.join(d, 'out.tar');
    const dest = await openOciArchiveDestination(file, 'v1', `oci-archive:${file}:v1`);
    expect(dest.preservesLayerAnnotations).toBe(true);
    expect(dest.canStoreIndex).toBe(true);
    await putImage(image, dest);
    expect(await readdir(d)).toEqual(['out.tar']); // no staging directory or temp file left

    const members = await listTar(await readFile(file));
    expect(members.get('oci-layout')?.content.toString()).toBe('{"imageLayoutVersion":"1.0.0"}');
    const index = JSON.parse(members.get('index.json')!.content.toString()) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.digest).toBe(image.manifestDigest);
    expect(index.manifests[0]!.annotations).toEqual({ 'org.opencontainers.image.ref.name': 'v1' });
    expect(members.get(`blobs/sha256/${hexOf(image.configDigest)}`)?.content.equals(image.config)).toBe(true);

    // Read back through the source, then copy again into a second archive: the bytes must survive both trips.
    const src = await openOciArchiveSource(file, 'v1', `oci-archive:${file}:v1`);
    const again = path.join(d, 'again.tar');
    const dest2 = await openOciArchiveDestination(again, undefined, `oci-archive:${again}`);
    try {
      expect((await copyImage(src, dest2)).digest).toBe(image.manifestDigest);
    } finally {
      await src.close();
    }
    const back = await openOciArchiveSource(again, undefined, `oci-archive:${again}`);
    try {
      const root = await back.rootDescriptor();
      expect(root.digest).toBe(image.manifestDigest);
      for (const l of image.layers) {
        expect((await collect(await back.openBlob({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length }))).equals(l.blob)).toBe(true);
      }
    } finally {
      await back.close();
    }
  });

  it('streams blobs larger than one read chunk into the archive and back', async () => {
    const d = await testDir();
    const layer = randomBytes(5 * 1024 * 1024 + 3);
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
      }),
    );
    const file = path.join(d, 'big.tar');
    const dest = await openOciArchiveDestination(file, undefined, `oci-archive:${file}`);
    for (const blob of [config, layer, manifest]) await dest.putBlob(Readable.from([blob]));
    await dest.commit({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length });
    const src = await openOciArchiveSource(file, undefined, `oci-archive:${file}`);
    try {
      const got = await collect(await src.openBlob({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }));
      expect(got.equals(layer)).toBe(true);
    } finally {
      await src.close();
    }
  });

  it('overwrites an existing file, like skopeo', async () => {
    const d = await testDir();
    const file = path.join(d, 'out.tar');
    await writeFile(file, 'old contents');
    const image = await makeImage([{ seed: 'new' }]);
    const dest = await openOciArchiveDestination(file, undefined, `oci-archive:${file}`);
    await putImage(image, dest);
    const src = await openOciArchiveSource(file, undefined, `oci-archive:${file}`);
    expect((await src.rootDescriptor()).digest).toBe(image.manifestDigest);
    await src.close();
    expect(await readdir(d)).toEqual(['out.tar']);
  });

  it('abort leaves nothing behind, and a directory target is refused up front', async () => {
    const d = await testDir();
    const file = path.join(d, 'never.tar');
    const image = await makeImage([{ seed: 'x' }]);
    const dest = await openOciArchiveDestination(file, 't', `oci-archive:${file}:t`);
    await dest.putBlob(Readable.from([image.config]));
    expect((await readdir(d)).length).toBe(1); // the staging directory
    await dest.abort();
    expect(await readdir(d)).toEqual([]);
    expect((await failure(openOciArchiveDestination(d, undefined, `oci-archive:${d}`))).code).toBe('DESTINATION');
    expect((await failure(openOciArchiveDestination(path.join(d, 'no/such/dir.tar'), undefined, 'x'))).code).toBe('DESTINATION');
  });
});
