import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { claimChunk, markReleasable, releaseChunk } from '../../../src/util/chunk-release.js';
import { FileChunkReader, FileSink } from '../../../src/util/file-chunks.js';

describe('chunk release', () => {
  it('frees a chunk its producer marked, at once', () => {
    const chunk = markReleasable(Buffer.alloc(1024, 1));
    releaseChunk(chunk);
    expect(chunk.buffer.byteLength).toBe(0);
  });

  it('never frees an unmarked chunk, a claimed one, or a view into a larger buffer', () => {
    const plain = Buffer.alloc(1024, 1);
    releaseChunk(plain);
    const claimed = markReleasable(Buffer.alloc(1024, 2));
    claimChunk(claimed);
    releaseChunk(claimed);
    const whole = new Uint8Array(4096);
    const view = markReleasable(whole.subarray(0, 1024));
    releaseChunk(view);
    expect([plain.length, claimed.length, view.length, whole.length]).toEqual([1024, 1024, 1024, 4096]);
  });
});

describe('file chunks', () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('reads a file in marked chunks with an exact-size last one, and a sink writes them back and frees them', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'imagegate-chunks-'));
    dirs.push(dir);
    const content = randomBytes(3 * 65536 + 123);
    await writeFile(path.join(dir, 'in'), content);
    const chunks: Buffer[] = [];
    for await (const chunk of new FileChunkReader(await open(path.join(dir, 'in'), 'r'), 65536)) chunks.push(chunk as Buffer);
    expect(chunks.map((c) => c.buffer.byteLength)).toEqual([65536, 65536, 65536, 123]);
    expect(Buffer.concat(chunks)).toEqual(content);
    // Marked: a sink that wrote them frees them.
    await pipeline(Readable.from(chunks), new FileSink(await open(path.join(dir, 'out'), 'wx')));
    expect(await readFile(path.join(dir, 'out'))).toEqual(content);
    expect(chunks.every((c) => c.buffer.byteLength === 0)).toBe(true);
  });

  it('writes chunks it may not free unchanged and leaves them intact', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'imagegate-chunks-'));
    dirs.push(dir);
    const parts = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
    await pipeline(Readable.from(parts), new FileSink(await open(path.join(dir, 'out'), 'wx')));
    expect(await readFile(path.join(dir, 'out'))).toEqual(Buffer.concat(parts));
    expect(parts.map((p) => p.length)).toEqual([1000, 70_000, 5]);
  });
});
