import { lstat, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { systemErrorCode } from '../errors.js';
import { formatMebibytes } from '../util/size.js';
import { processRuns, readStagingOwner } from './staging-owner.js';
import { stagingPrefixFor } from './staging-paths.js';

/**
 * A staging directory without an owner record counts as left behind once nothing in it changed for this long: long
 * enough that a copy by an older version, which wrote no record, would have written something meanwhile.
 */
export const UNOWNED_STAGING_STALE_MS = 15 * 60 * 1000;

/** A staging directory removed by `sweepStaleStaging`, and why it was judged left behind. */
export interface SweptStaging {
  dir: string;
  /** Bytes of the files it held. */
  bytes: number;
  /** `process 1234 no longer runs`, or `it names no owner and has not changed for 42 minutes`. */
  reason: string;
}

/**
 * Removes the staging directories that earlier runs into `target` left behind: those whose owner process no longer
 * runs on this machine, and those without an owner record that have not changed for UNOWNED_STAGING_STALE_MS. A
 * directory owned by a running process, or by a process of another machine, is a copy in progress and stays.
 */
export async function sweepStaleStaging(target: string, now: number = Date.now()): Promise<SweptStaging[]> {
  const resolved = path.resolve(target);
  const parent = path.dirname(resolved);
  const prefix = stagingPrefixFor(resolved);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT' || systemErrorCode(e) === 'ENOTDIR') return [];
    throw e;
  }
  const swept: SweptStaging[] = [];
  for (const name of names.filter((n) => n.startsWith(prefix)).sort()) {
    const dir = path.join(parent, name);
    const reason = await whyStale(dir, now);
    if (reason === undefined) continue;
    const { bytes } = await treeStats(dir);
    await rm(dir, { recursive: true, force: true });
    swept.push({ dir, bytes, reason });
  }
  return swept;
}

async function whyStale(dir: string, now: number): Promise<string | undefined> {
  const info = await lstat(dir).catch(() => undefined);
  // Only directories this tool made: never follow a link or touch a file that merely has the name.
  if (info === undefined || !info.isDirectory()) return undefined;
  const owner = await readStagingOwner(dir);
  if (owner !== undefined) {
    if (owner.hostname !== os.hostname() || processRuns(owner.pid)) return undefined;
    return `process ${owner.pid} that was writing it no longer runs`;
  }
  const idleMs = now - (await treeStats(dir)).newestMs;
  if (idleMs < UNOWNED_STAGING_STALE_MS) return undefined;
  return `it names no owner and nothing in it changed for ${Math.floor(idleMs / 60_000)} minutes`;
}

/** Total size of the files under `dir` and the newest modification time of anything there. */
async function treeStats(dir: string): Promise<{ bytes: number; newestMs: number }> {
  const top = await lstat(dir);
  let bytes = 0;
  let newestMs = top.mtimeMs;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const info = await lstat(path.join(entry.parentPath, entry.name)).catch(() => undefined);
    if (info === undefined) continue;
    if (info.isFile()) bytes += info.size;
    newestMs = Math.max(newestMs, info.mtimeMs);
  }
  return { bytes, newestMs };
}

/** One line for the user: what was removed, how big it was, and why it was safe to. */
export function describeSweptStaging(s: SweptStaging): string {
  return `removed ${s.dir} (${formatMebibytes(s.bytes)}), left behind by an earlier run that stopped before its end: ${s.reason}`;
}
