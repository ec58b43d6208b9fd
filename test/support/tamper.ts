/**
 * Simulates an attacker with registry write access: changes one byte of an encrypted layer and re-publishes a
 * consistent image (new blob digest, new manifest, new index.json entry), so every digest checks out and only the
 * layer's HMAC can tell. Single-image layouts only.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readBlobJson, readIndexJson, readLayerBlob, resolveTag, type ImageManifest } from './image-builder.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

async function putBlob(layoutDir: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(path.join(layoutDir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

export async function tamperLayerConsistently(layoutDir: string, tag: string, layerIndex: number, byteOffset = 100): Promise<void> {
  const entry = await resolveTag(layoutDir, tag);
  const manifest = (await readBlobJson(layoutDir, entry.digest)) as ImageManifest;
  const layer = manifest.layers[layerIndex];
  if (layer === undefined) throw new Error(`no layer ${layerIndex}`);
  const blob = Buffer.from(await readLayerBlob(layoutDir, layer.digest));
  blob[byteOffset % blob.length]! ^= 0x01;
  Object.assign(layer, await putBlob(layoutDir, blob));
  await replaceManifest(layoutDir, tag, manifest);
}

/** Stores `manifest` as a blob and points `tag` at it: an edited image that is consistent digest-wise. */
export async function replaceManifest(layoutDir: string, tag: string, manifest: object): Promise<void> {
  const m = await putBlob(layoutDir, Buffer.from(JSON.stringify(manifest)));
  const index = await readIndexJson(layoutDir);
  index.manifests = index.manifests.map((d) => (d.annotations?.[REF_NAME] === tag ? { ...d, ...m } : d));
  await writeFile(path.join(layoutDir, 'index.json'), JSON.stringify(index));
}

/** Flips a byte of a blob file in place: the blob no longer matches its digest. */
export async function corruptBlobInPlace(layoutDir: string, digest: string, byteOffset = 10): Promise<void> {
  const file = path.join(layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const bytes = await readFile(file);
  bytes[byteOffset % bytes.length]! ^= 0x01;
  await writeFile(file, bytes);
}
