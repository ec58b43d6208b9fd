import { spawn } from 'node:child_process';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testTempDir } from '../../support/tools.js';
import { createStagingDir, STAGING_OWNER_FILE } from '../../../src/transport/staging-owner.js';
import { describeSweptStaging, sweepStaleStaging, UNOWNED_STAGING_STALE_MS } from '../../../src/transport/staging-sweep.js';
import { sweepStaleStagingOf } from '../../../src/transport/transports.js';

/** The pid of a process that ran and exited: what a staging directory of a killed run records. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

async function stagingWithOwner(dir: string, owner: unknown): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'blobs', 'sha256', 'abc'), Buffer.alloc(3000));
  if (owner !== undefined) await writeFile(path.join(dir, STAGING_OWNER_FILE), JSON.stringify(owner));
}

async function age(dir: string, ms: number): Promise<void> {
  const when = new Date(Date.now() - ms);
  for (const entry of await readdir(dir, { recursive: true })) await utimes(path.join(dir, entry), when, when);
  await utimes(dir, when, when);
}

describe('sweepStaleStaging', () => {
  it("removes the staging directories of processes that no longer run, and keeps running ones', other machines' and other targets'", async () => {
    const d = await testTempDir('sweep-');
    const target = path.join(d, 'app');
    const dead = path.join(d, '.app.imagegate-dead');
    await stagingWithOwner(dead, { pid: await deadPid(), hostname: os.hostname() });
    const live = path.join(d, '.app.imagegate-live');
    await createStagingDir(live);
    const foreign = path.join(d, '.app.imagegate-foreign');
    await stagingWithOwner(foreign, { pid: await deadPid(), hostname: `not-${os.hostname()}` });
    const otherTarget = path.join(d, '.app2.imagegate-dead');
    await stagingWithOwner(otherTarget, { pid: await deadPid(), hostname: os.hostname() });
    const notADirectory = path.join(d, '.app.imagegate-file');
    await writeFile(notADirectory, 'x');

    const swept = await sweepStaleStaging(target);
    expect(swept.map((s) => s.dir)).toEqual([dead]);
    expect(swept[0]!.bytes).toBeGreaterThanOrEqual(3000);
    expect(describeSweptStaging(swept[0]!)).toMatch(/^removed .*\.app\.imagegate-dead \(0\.0 MiB\), left behind by an earlier run that stopped before its end: process \d+ that was writing it no longer runs$/);
    expect((await readdir(d)).sort()).toEqual(['.app.imagegate-file', '.app.imagegate-foreign', '.app.imagegate-live', '.app2.imagegate-dead']);
  });

  it('removes a staging directory without an owner record only once nothing in it changed for a while', async () => {
    const d = await testTempDir('sweep-unowned-');
    const old = path.join(d, '.app.tar.imagegate-old');
    await stagingWithOwner(old, undefined);
    await age(old, UNOWNED_STAGING_STALE_MS + 60_000);
    const fresh = path.join(d, '.app.tar.imagegate-fresh');
    await stagingWithOwner(fresh, undefined);
    // A half-written record (the owner killed while writing it) counts as none.
    const torn = path.join(d, '.app.tar.imagegate-torn');
    await stagingWithOwner(torn, undefined);
    await writeFile(path.join(torn, STAGING_OWNER_FILE), '{"pid":12');

    const swept = await sweepStaleStagingOf(`oci-archive:${path.join(d, 'app.tar')}:v1`);
    expect(swept.map((s) => s.dir)).toEqual([old]);
    expect(swept[0]!.reason).toMatch(/^it names no owner and nothing in it changed for 1[5-9] minutes$/);
    expect((await readdir(d)).sort()).toEqual(['.app.tar.imagegate-fresh', '.app.tar.imagegate-torn']);
  });

  it('has nothing to sweep for a registry or a destination whose parent does not exist', async () => {
    expect(await sweepStaleStagingOf('docker://registry.example/team/app:1')).toEqual([]);
    expect(await sweepStaleStaging(path.join(await testTempDir('sweep-none-'), 'missing', 'app'))).toEqual([]);
  });
});
