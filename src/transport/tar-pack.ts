import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { READ_CHUNK } from './layout-files.js';

/*
 * Writing tar archives (oci-archive, docker-archive) with tar-stream, one streamed member after the other, and
 * putting the finished file in place atomically.
 */

/** One member of an archive being written: a file copied from disk, small in-memory bytes, or a directory. */
export type ArchiveMember = { name: string; file: string } | { name: string; bytes: Buffer } | { name: string; directory: true };

/** Fixed timestamps make archives of the same image byte-identical (moby#42766 is about the opposite). */
const MTIME = new Date(0);

/**
 * Packs `members` into a new tar file `tmp`, streaming file members from disk one after the other, so memory
 * does not grow with blob size. Removes `tmp` again on failure. Shared by the oci-archive and docker-archive
 * writers.
 */
export async function writeTarFile(tmp: string, members: readonly ArchiveMember[], description: string): Promise<void> {
  const pack = tarPack();
  const out = pipeline(pack, createWriteStream(tmp, { flags: 'wx' }));
  // A failing write (disk full) must also stop the entry being added, which waits on the pack otherwise.
  out.catch((e: unknown) => pack.destroy(e instanceof Error ? e : new Error(String(e))));
  try {
    for (const m of members) await addMember(pack, m);
    pack.finalize();
    await out;
  } catch (e) {
    pack.destroy();
    await out.catch(() => undefined);
    await rm(tmp, { force: true });
    if (e instanceof ImagegateError) throw e;
    throw new ImagegateError('DESTINATION', `${description}: cannot write ${tmp}: ${(e as Error).message}`, { cause: e });
  }
}

type Sink = ReturnType<Pack['entry']>;
type EntryHeader = Parameters<Pack['entry']>[0];

async function addMember(pack: Pack, m: ArchiveMember): Promise<void> {
  if ('directory' in m) {
    await entryDone(pack, { name: m.name, type: 'directory', mode: 0o755, mtime: MTIME }, (sink) => sink.end(undefined));
    return;
  }
  if ('bytes' in m) {
    await entryDone(pack, { name: m.name, type: 'file', mode: 0o644, mtime: MTIME, size: m.bytes.length }, (sink) => sink.end(m.bytes));
    return;
  }
  const { size } = await stat(m.file);
  // tar-stream's entry checks that exactly `size` bytes arrive, so a file changing under us fails the write.
  await entryDone(pack, { name: m.name, type: 'file', mode: 0o644, mtime: MTIME, size }, (sink, fail) => pump(m.file, sink, fail));
}

/**
 * Copies a file into a tar-stream entry with back-pressure: reading pauses while the entry is full. (Node's
 * `pipe`/`pipeline` are typed for Node streams, and tar-stream's entries are streamx streams.)
 */
function pump(file: string, sink: Sink, fail: (e: unknown) => void): void {
  const src = createReadStream(file, { highWaterMark: READ_CHUNK });
  src.on('data', (chunk) => {
    if (!sink.write(chunk)) {
      src.pause();
      sink.once('drain', () => src.resume());
    }
  });
  src.on('end', () => sink.end(undefined));
  src.on('error', (e) => {
    sink.destroy(e);
    fail(e);
  });
  sink.on('close', () => src.destroy());
}

/** Adds one entry and waits until tar-stream has taken all of it, so entries are written strictly in order. */
function entryDone(pack: Pack, header: EntryHeader, fill: (sink: Sink, fail: (e: unknown) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (e?: unknown): void => {
      if (settled) return;
      settled = true;
      if (e === undefined || e === null) resolve();
      else reject(e instanceof Error ? e : new Error(String(e)));
    };
    const sink = pack.entry(header, (err) => settle(err));
    fill(sink, settle);
  });
}

/** Refuses targets skopeo would refuse too, before any work is done: a directory, or a missing parent. */
export async function checkArchiveTarget(target: string, description: string): Promise<void> {
  try {
    if ((await stat(target)).isDirectory()) {
      throw new ImagegateError('DESTINATION', `${description}: ${target} is a directory; an archive destination needs a file name (use oci:${target} for a layout directory)`);
    }
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    if (systemErrorCode(e) !== 'ENOENT') throw new ImagegateError('DESTINATION', `${description}: cannot access ${target}: ${(e as Error).message}`, { cause: e });
  }
  const dir = path.dirname(target);
  try {
    if (!(await stat(dir)).isDirectory()) throw new ImagegateError('DESTINATION', `${description}: ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    throw new ImagegateError('DESTINATION', `${description}: the directory ${dir} does not exist; create it first`, { cause: e });
  }
}

/** Atomically puts the finished archive in place, overwriting an existing FILE as skopeo does. */
export async function replaceFile(tmp: string, target: string, description: string): Promise<void> {
  try {
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ImagegateError('DESTINATION', `${description}: cannot replace ${target}: ${(e as Error).message}`, { cause: e });
  }
}
