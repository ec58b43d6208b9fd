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

/**
 * The AES-CTR malleability attack, for real: an attacker with registry write who knows a layer's plaintext (the
 * compressed layer as published before encryption: a public base, an earlier release) XORs the ciphertext so that it
 * decrypts to `chosen` followed by `padding` up to the original length (new_ct = ct XOR old_pt XOR new_pt). The
 * published HMAC stays as it was (the attacker cannot compute a new one), and the image is re-published consistently
 * (new blob digest in the manifest, new manifest in index.json), so only the HMAC over the whole layer can tell.
 * Returns the digest the forged plaintext would have if it were stored decrypted.
 */
export async function forgeLayerPlaintext(
  layoutDir: string,
  tag: string,
  layerIndex: number,
  knownPlaintext: Buffer,
  chosen: Buffer,
  padding: 'zeros' | Buffer = 'zeros',
): Promise<{ forgedPlaintextDigest: string }> {
  const entry = await resolveTag(layoutDir, tag);
  const manifest = (await readBlobJson(layoutDir, entry.digest)) as ImageManifest;
  const layer = manifest.layers[layerIndex];
  if (layer === undefined) throw new Error(`no layer ${layerIndex}`);
  const ciphertext = Buffer.from(await readLayerBlob(layoutDir, layer.digest));
  if (knownPlaintext.length !== ciphertext.length) throw new Error(`the known plaintext is ${knownPlaintext.length} bytes; the layer is ${ciphertext.length}`);
  if (chosen.length > ciphertext.length) throw new Error(`the chosen plaintext (${chosen.length} bytes) is longer than the layer (${ciphertext.length})`);
  const forged = Buffer.alloc(ciphertext.length);
  chosen.copy(forged);
  if (padding !== 'zeros') for (let i = chosen.length; i < forged.length; i++) forged[i] = padding[(i - chosen.length) % padding.length]!;
  for (let i = 0; i < ciphertext.length; i++) ciphertext[i] = ciphertext[i]! ^ knownPlaintext[i]! ^ forged[i]!;
  Object.assign(layer, await putBlob(layoutDir, ciphertext));
  await replaceManifest(layoutDir, tag, manifest);
  return { forgedPlaintextDigest: `sha256:${createHash('sha256').update(forged).digest('hex')}` };
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
