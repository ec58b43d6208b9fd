import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { pack } from 'tar-stream';
import { Readable } from 'node:stream';
import type { Descriptor } from '../image/descriptor.js';
import { MediaType } from '../image/media-types.js';
import { serialize } from '../image/manifest.js';
import { OciLayoutDestination } from '../transport/oci-layout-destination.js';
import { readAll } from '../util/streams.js';

/** A small, deterministic two-layer image for the quick start: real tar+gzip layers and a valid config. */
export async function writeSampleImage(dir: string, tag: string): Promise<Descriptor> {
  const layers = [
    await tarOf({ 'etc/motd': 'Hello from an imagegate sample image.\n', 'etc/os-release': 'NAME=sample\n' }),
    await tarOf({ 'app/run.sh': '#!/bin/sh\necho "the secret sauce lives here"\n', 'app/data/secret.txt': 'only key holders can read this\n' }),
  ];
  const dest = await OciLayoutDestination.open(dir, tag, `oci:${dir}:${tag}`);
  try {
    const layerDescs: Descriptor[] = [];
    for (const tar of layers) {
      const gz = gzipSync(tar);
      const stored = await dest.putBlob(Readable.from([gz]));
      layerDescs.push({ mediaType: MediaType.OciLayerGzip, ...stored });
    }
    const config = {
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh', '/app/run.sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: layers.map((t) => `sha256:${createHash('sha256').update(t).digest('hex')}`) },
      history: layers.map((_, i) => ({ created_by: `imagegate sample layer ${i}` })),
    };
    const configStored = await dest.putBlob(Readable.from([serialize(config)]));
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, ...configStored },
      layers: layerDescs,
    };
    const stored = await dest.putManifest(serialize(manifest));
    const root: Descriptor = { mediaType: MediaType.OciManifest, ...stored };
    await dest.commit(root);
    return root;
  } catch (e) {
    await dest.abort();
    throw e;
  }
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) {
    p.entry({ name, mode: name.endsWith('.sh') ? 0o755 : 0o644, mtime: new Date(0) }, content);
  }
  p.finalize();
  return readAll(p as unknown as Readable, 1024 * 1024, 'sample layer');
}
