/**
 * Runs the built imagegate CLI (dist/, made by `npm test`'s build step) as a user would, and compares images by
 * their uncompressed layer content, which is what survives a round trip through tools that (re)compress.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { readLayerBlob, readManifestFor, type Platform } from './image-builder.js';
import { run, type RunOptions, type RunResult } from './tools.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(repo, 'dist/cli/imagegate.js');

export function imagegate(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
  return run(process.execPath, [CLI, ...args], opts);
}

export async function imagegateOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await imagegate(args, opts);
  if (r.code !== 0) throw new Error(`imagegate ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r;
}

/** sha256 of each layer's uncompressed tar, bottom first; throws on encrypted layers. */
export async function layerContentDigests(layoutDir: string, tag?: string, platform?: Platform): Promise<string[]> {
  const manifest = await readManifestFor(layoutDir, tag, platform);
  const out: string[] = [];
  for (const l of manifest.layers) {
    if (l.mediaType.endsWith('+encrypted')) throw new Error(`layer ${l.digest} of ${layoutDir}:${tag} is still encrypted`);
    const blob = await readLayerBlob(layoutDir, l.digest);
    const tar = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
    out.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
  }
  return out;
}
