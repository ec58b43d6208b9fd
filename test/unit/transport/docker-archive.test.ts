import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { testTempDir } from '../../support/tools.js';
import type { Descriptor } from '../../../src/image/descriptor.js';
import type { ImageSource } from '../../../src/image/image.js';
import { parseManifest } from '../../../src/image/manifest.js';
import { openDockerArchiveDestination, openDockerArchiveSource } from '../../../src/transport/docker-archive.js';
import { collect, copyImage, hexOf, layoutBlobs, listTar, makeImage, putImage, sha256, tarOf, type TarEntry, type TestImage, failure } from './tar-fixtures.js';

/** A fresh directory per test (removed afterwards), so leftovers such as staging dirs can be checked for. */
const testDir = () => testTempDir('imagegate-archive-');

async function withSource<T>(file: string, ref: string | undefined, use: (src: ImageSource) => Promise<T>): Promise<T> {
  const src = await openDockerArchiveSource(file, ref, `docker-archive:${file}${ref !== undefined ? `:${ref}` : ''}`);
  try {
    return await use(src);
  } finally {
    await src.close();
  }
}

/**
 * A pre-Docker-25 `docker save`: `<v1id>/layer.tar` per layer, a repeated layer stored as a symlink to the first
 * copy (`../<v1id>/layer.tar`), `<config hex>.json`, manifest.json and repositories.
 */
async function legacyArchive(images: ReadonlyArray<{ image: TestImage; repoTags: string[] }>): Promise<Buffer> {
  const entries: TarEntry[] = [];
  const items: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const stored = new Map<string, string>();
  for (const [n, { image, repoTags }] of images.entries()) {
    const layers: string[] = [];
    for (const [i, l] of image.layers.entries()) {
      const v1id = hexOf(sha256(`v1 ${n} ${i}`));
      const name = `${v1id}/layer.tar`;
      entries.push({ name: `${v1id}/VERSION`, content: '1.0' }, { name: `${v1id}/json`, content: '{}' });
      const first = stored.get(l.digest);
      if (first === undefined) {
        entries.push({ name, content: l.blob });
        stored.set(l.digest, name);
      } else {
        entries.push({ name, type: 'symlink', linkname: `../${first}` });
      }
      layers.push(name);
    }
    entries.push({ name: `${hexOf(image.configDigest)}.json`, content: image.config });
    items.push({ Config: `${hexOf(image.configDigest)}.json`, RepoTags: repoTags, Layers: layers });
  }
  entries.push({ name: 'manifest.json', content: JSON.stringify(items) }, { name: 'repositories', content: '{}' });
  return tarOf(entries);
}

/**
 * A Docker >= 25 `docker save`: an OCI layout with one index.json entry per tag (annotated with the full name
 * and the tag), and manifest.json pointing into blobs/. `manifestOrder` lets manifest.json list images in a
 * different order than index.json.
 */
async function docker25Archive(
  images: ReadonlyArray<{ image: TestImage; names: string[] }>,
  opts: { annotate?: boolean; manifestOrder?: number[] } = {},
): Promise<Buffer> {
  const index: Descriptor[] = [];
  const blobs = new Map<string, TarEntry>();
  const items: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  for (const { image, names } of images) {
    for (const e of layoutBlobs(image)) blobs.set(e.name, e);
    const tags = names.length > 0 ? names : [undefined];
    for (const name of tags) {
      const annotations: Record<string, string> = {};
      if (name !== undefined && opts.annotate !== false) {
        annotations['io.containerd.image.name'] = name;
        annotations['org.opencontainers.image.ref.name'] = name.slice(name.lastIndexOf(':') + 1);
      }
      index.push({ ...image.root, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) });
    }
    items.push({
      Config: `blobs/sha256/${hexOf(image.configDigest)}`,
      RepoTags: names.map((n) => n.replace(/^docker\.io\/library\//, '')),
      Layers: image.layers.map((l) => `blobs/sha256/${hexOf(l.digest)}`),
    });
  }
  const order = opts.manifestOrder ?? items.map((_, i) => i);
  return tarOf([
    { name: 'blobs', type: 'directory' },
    { name: 'blobs/sha256', type: 'directory' },
    ...blobs.values(),
    { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index }) },
    { name: 'manifest.json', content: JSON.stringify(order.map((i) => items[i])) },
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'repositories', content: '{}' },
  ]);
}

async function archiveFile(bytes: Buffer, name = 'archive.tar'): Promise<string> {
  const file = path.join(await testDir(), name);
  await writeFile(file, bytes);
  return file;
}

describe('docker-archive source: legacy docker save', () => {
  it('synthesises a schema 2 manifest: DiffIDs for plain layers, hashed digests for gzip layers, symlinked duplicates followed', async () => {
    const image = await makeImage([{ seed: 'base' }, { seed: 'gz', gzip: true }, { seed: 'base' }], 'docker');
    const file = await archiveFile(await legacyArchive([{ image, repoTags: ['busybox:latest'] }]));
    await withSource(file, undefined, async (src) => {
      const root = await src.rootDescriptor();
      expect(root.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      const bytes = await src.readBlob(root);
      expect(sha256(bytes)).toBe(root.digest);
      expect(bytes.length).toBe(root.size);
      const manifest = parseManifest(bytes, 'synthesised', root.mediaType);
      expect(manifest.config).toEqual({ mediaType: 'application/vnd.docker.container.image.v1+json', digest: image.configDigest, size: image.config.length });
      expect(manifest.layers).toEqual([
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: image.layers[0]!.diffId, size: image.layers[0]!.blob.length },
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: image.layers[1]!.digest, size: image.layers[1]!.blob.length },
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: image.layers[2]!.diffId, size: image.layers[2]!.blob.length },
      ]);
      expect((await src.readBlob(manifest.config)).equals(image.config)).toBe(true);
      for (const [i, l] of manifest.layers.entries()) {
        expect((await collect(await src.openBlob(l))).equals(image.layers[i]!.blob)).toBe(true);
      }
      const unknown = await failure(src.openBlob({ mediaType: 'x', digest: sha256('nope'), size: 4 }));
      expect(unknown.code).toBe('NOT_FOUND');
    });
  });

  it('selects by name:tag (normalised both ways) or @N, and lists RepoTags when the choice is ambiguous', async () => {
    const one = await makeImage([{ seed: 'one' }], 'docker');
    const two = await makeImage([{ seed: 'two' }], 'docker');
    const file = await archiveFile(
      await legacyArchive([
        { image: one, repoTags: ['busybox:latest'] },
        { image: two, repoTags: ['example.com/team/app:1.0', 'example.com/team/app:stable'] },
      ]),
    );
    const configOf = async (ref: string | undefined): Promise<string> =>
      withSource(file, ref, async (src) => parseManifest(await src.readBlob(await src.rootDescriptor()), 't').config.digest);
    expect(await configOf('busybox')).toBe(one.configDigest);
    expect(await configOf('docker.io/library/busybox:latest')).toBe(one.configDigest);
    expect(await configOf('example.com/team/app:stable')).toBe(two.configDigest);
    expect(await configOf('@0')).toBe(one.configDigest);
    expect(await configOf('@1')).toBe(two.configDigest);

    const ambiguous = await failure(configOf(undefined));
    expect(ambiguous.code).toBe('USAGE');
    expect(ambiguous.message).toContain('busybox:latest');
    expect(ambiguous.message).toContain('example.com/team/app:1.0');
    expect((await failure(configOf('busybox:1.36'))).code).toBe('NOT_FOUND');
    expect((await failure(configOf('@2'))).code).toBe('NOT_FOUND');
    expect((await failure(configOf('@x'))).code).toBe('BAD_REFERENCE');
    expect((await failure(configOf(`busybox@${sha256('x')}`))).code).toBe('BAD_REFERENCE');
  });

  it('fails a layer whose bytes do not match the DiffID in the config', async () => {
    const image = await makeImage([{ seed: 'real' }], 'docker');
    const other = await makeImage([{ seed: 'swapped' }], 'docker');
    // Same config, but the layer file holds another layer's bytes.
    const forged: TestImage = { ...image, layers: [{ ...image.layers[0]!, blob: other.layers[0]!.blob }] };
    const file = await archiveFile(await legacyArchive([{ image: forged, repoTags: [] }]));
    await withSource(file, undefined, async (src) => {
      const manifest = parseManifest(await src.readBlob(await src.rootDescriptor()), 't');
      const e = await failure(collect(await src.openBlob(manifest.layers[0]!)));
      expect(e.code).toBe('DIGEST_MISMATCH');
    });
  });

  it('refuses an archive that is not docker save output', async () => {
    const file = await archiveFile(await tarOf([{ name: 'hello.txt', content: 'hi' }]));
    const e = await failure(openDockerArchiveSource(file, undefined, `docker-archive:${file}`));
    expect(e.code).toBe('BAD_FORMAT');
    expect(e.message).toContain('manifest.json');
  });
});

describe('docker-archive source: Docker >= 25 docker save', () => {
  it('reads the OCI layout, keeping the original manifest, and follows the full-name annotation', async () => {
    const bb = await makeImage([{ seed: 'bb1' }, { seed: 'bb2' }]);
    const app = await makeImage([{ seed: 'app' }]);
    const file = await archiveFile(
      await docker25Archive([
        { image: bb, names: ['docker.io/library/busybox:latest', 'docker.io/library/busybox:1.36'] },
        { image: app, names: ['example.com/app:1.0'] },
      ]),
    );
    const rootOf = (ref: string | undefined): Promise<Descriptor> => withSource(file, ref, (src) => src.rootDescriptor());
    expect((await rootOf('busybox:1.36')).digest).toBe(bb.manifestDigest);
    expect((await rootOf('busybox')).digest).toBe(bb.manifestDigest);
    expect((await rootOf('example.com/app:1.0')).digest).toBe(app.manifestDigest);
    expect((await rootOf('@1')).digest).toBe(app.manifestDigest);
    expect((await failure(rootOf(undefined))).code).toBe('USAGE');
    expect((await failure(rootOf('example.com/app:2.0'))).code).toBe('NOT_FOUND');
    await withSource(file, 'busybox:latest', async (src) => {
      const root = await src.rootDescriptor();
      expect((await src.readBlob(root)).equals(bb.manifest)).toBe(true);
      const l = bb.layers[1]!;
      expect((await collect(await src.openBlob({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length }))).equals(l.blob)).toBe(true);
    });
  });

  it('maps manifest.json RepoTags and positions to index.json entries through the config digest', async () => {
    const first = await makeImage([{ seed: 'first' }]);
    const second = await makeImage([{ seed: 'second' }]);
    // No annotations, and manifest.json lists the images in the opposite order of index.json.
    const file = await archiveFile(
      await docker25Archive(
        [
          { image: first, names: ['first:1'] },
          { image: second, names: ['second:2'] },
        ],
        { annotate: false, manifestOrder: [1, 0] },
      ),
    );
    const rootOf = (ref: string | undefined): Promise<Descriptor> => withSource(file, ref, (src) => src.rootDescriptor());
    expect((await rootOf('@0')).digest).toBe(second.manifestDigest);
    expect((await rootOf('@1')).digest).toBe(first.manifestDigest);
    expect((await rootOf('first:1')).digest).toBe(first.manifestDigest);
  });

  it('takes the only image without a reference even when it has several tags', async () => {
    const image = await makeImage([{ seed: 'solo' }]);
    const file = await archiveFile(await docker25Archive([{ image, names: ['docker.io/library/solo:a', 'docker.io/library/solo:b'] }]));
    expect((await withSource(file, undefined, (src) => src.rootDescriptor())).digest).toBe(image.manifestDigest);
  });
});

describe('docker-archive destination', () => {
  it('writes what docker load expects, and reads back the same config and layers', async () => {
    const d = await testDir();
    const image = await makeImage([{ seed: 'l1', gzip: true }, { seed: 'l2' }, { seed: 'l1', gzip: true }]);
    const file = path.join(d, 'saved.tar');
    const dest = await openDockerArchiveDestination(file, 'example.com/team/app:1.0', `docker-archive:${file}:example.com/team/app:1.0`);
    expect(dest.preservesLayerAnnotations).toBe(false);
    expect(dest.canStoreIndex).toBe(false);
    await putImage(image, dest);
    expect(await readdir(d)).toEqual(['saved.tar']);

    const members = await listTar(await readFile(file));
    const configName = `${hexOf(image.configDigest)}.json`;
    const layerNames = image.layers.map((l) => `${hexOf(l.digest)}.tar`);
    expect([...members.keys()].sort()).toEqual([configName, ...new Set(layerNames), 'manifest.json', 'repositories'].sort());
    expect(JSON.parse(members.get('manifest.json')!.content.toString())).toEqual([
      { Config: configName, RepoTags: ['example.com/team/app:1.0'], Layers: layerNames },
    ]);
    expect(JSON.parse(members.get('repositories')!.content.toString())).toEqual({
      'example.com/team/app': { '1.0': hexOf(image.layers[2]!.digest) },
    });
    expect(members.get(layerNames[0]!)!.content.equals(image.layers[0]!.blob)).toBe(true);

    await withSource(file, 'example.com/team/app:1.0', async (src) => {
      const root = await src.rootDescriptor();
      const manifest = parseManifest(await src.readBlob(root), 't', root.mediaType);
      expect(manifest.config.digest).toBe(image.configDigest);
      expect(manifest.layers.map((l) => l.digest)).toEqual(image.layers.map((l) => l.digest));
      expect(manifest.layers.map((l) => l.mediaType)).toEqual([
        'application/vnd.docker.image.rootfs.diff.tar.gzip',
        'application/vnd.docker.image.rootfs.diff.tar',
        'application/vnd.docker.image.rootfs.diff.tar.gzip',
      ]);
      for (const [i, l] of manifest.layers.entries()) expect((await collect(await src.openBlob(l))).equals(image.layers[i]!.blob)).toBe(true);

      // And once more, docker-archive to docker-archive, untagged.
      const again = path.join(d, 'again.tar');
      const dest2 = await openDockerArchiveDestination(again, undefined, `docker-archive:${again}`);
      expect((await copyImage(src, dest2)).digest).toBe(root.digest);
      const m2 = await listTar(await readFile(again));
      expect(JSON.parse(m2.get('manifest.json')!.content.toString())[0].RepoTags).toEqual([]);
      expect(m2.has('repositories')).toBe(false);
    });
  });

  it('uses the familiar name for Docker Hub images', async () => {
    const d = await testDir();
    const file = path.join(d, 'hub.tar');
    const dest = await openDockerArchiveDestination(file, 'docker.io/library/busybox', `docker-archive:${file}:busybox`);
    await putImage(await makeImage([{ seed: 'hub' }]), dest);
    const members = await listTar(await readFile(file));
    expect(JSON.parse(members.get('manifest.json')!.content.toString())[0].RepoTags).toEqual(['busybox:latest']);
    expect(Object.keys(JSON.parse(members.get('repositories')!.content.toString()))).toEqual(['busybox']);
  });

  it('refuses encrypted layers with a message that names the alternatives, and leaves nothing behind', async () => {
    const d = await testDir();
    const file = path.join(d, 'enc.tar');
    const image = await makeImage([{ seed: 'secret', gzip: true, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted' }]);
    const dest = await openDockerArchiveDestination(file, 'app:1', `docker-archive:${file}:app:1`);
    const e = await failure(putImage(image, dest));
    expect(e.code).toBe('DESTINATION');
    expect(e.message).toContain('docker-archive cannot carry the key annotations of encrypted layers (containers/skopeo#982)');
    expect(e.message).toContain('oci-archive:');
    await dest.abort();
    expect(await readdir(d)).toEqual([]);
  });

  it('refuses an index as the root, and @N or digests as the name to write', async () => {
    const d = await testDir();
    const file = path.join(d, 'idx.tar');
    const dest = await openDockerArchiveDestination(file, undefined, `docker-archive:${file}`);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    const stored = await dest.putBlob(Readable.from([index]));
    const e = await failure(dest.commit({ mediaType: 'application/vnd.oci.image.index.v1+json', ...stored }));
    expect(e.code).toBe('DESTINATION');
    expect(e.message).toContain('platform');
    await dest.abort();
    expect((await failure(openDockerArchiveDestination(file, '@0', 'x'))).code).toBe('USAGE');
    expect((await failure(openDockerArchiveDestination(file, `app@${sha256('x')}`, 'x'))).code).toBe('BAD_REFERENCE');
    expect(await readdir(d)).toEqual([]);
  });
});
