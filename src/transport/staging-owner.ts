import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { systemErrorCode } from '../errors.js';

/**
 * Which process a staging directory belongs to, recorded inside it, so a later run can tell the directory of a
 * copy still running from one left behind by a copy that was killed (kill -9, a crash, a power cut), which nothing
 * else would ever remove.
 */
export interface StagingOwner {
  pid: number;
  /** The process id only means something on the machine that wrote it (a shared or network file system). */
  hostname: string;
}

export const STAGING_OWNER_FILE = '.imagegate-owner';

/** Creates a staging directory that records this process as its owner. */
export async function createStagingDir(dir: string): Promise<void> {
  await mkdir(dir);
  const owner: StagingOwner = { pid: process.pid, hostname: os.hostname() };
  await writeFile(path.join(dir, STAGING_OWNER_FILE), `${JSON.stringify(owner)}\n`);
}

/** Removes the owner record, for a staging directory about to become the destination itself. */
export async function releaseStagingDir(dir: string): Promise<void> {
  await rm(path.join(dir, STAGING_OWNER_FILE), { force: true });
}

/** The owner a staging directory records, or undefined when it has no readable record (an older version wrote it). */
export async function readStagingOwner(dir: string): Promise<StagingOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, STAGING_OWNER_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<StagingOwner>;
    if (Number.isSafeInteger(parsed.pid) && parsed.pid! > 0 && typeof parsed.hostname === 'string') return { pid: parsed.pid!, hostname: parsed.hostname };
  } catch {
    // Half-written (the owner was killed while writing it): the same as no record.
  }
  return undefined;
}

/** Whether a process runs on this machine under `pid` (signal 0 tests without sending anything). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return systemErrorCode(e) === 'EPERM';
  }
}
