import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { unpackLayers, type UnpackLayer } from '../../../src/unpack/unpack.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; content?: string; linkname?: string; mode?: number; mtime?: Date };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), mtime: e.mtime ?? new Date(1_700_000_000_000), ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
    if ((e.type ?? 'file') === 'file') p.entry(header, e.content ?? '');
    else p.entry(header);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function layer(label: string, entries: Entry[]): UnpackLayer {
  return { label, open: async () => Readable.from([await tarOf(entries)]) };
}

/** A layer whose bytes are all delivered and then the stream fails, as a decrypted layer does when its HMAC fails. */
function tamperedLayer(entries: Entry[]): UnpackLayer {
  return {
    label: 'tampered layer',
    open: async () => {
      const out = new PassThrough();
      const bytes = await tarOf(entries);
      out.write(bytes);
      setImmediate(() => out.destroy(new Error('layer 1: HMAC verification failed')));
      return out;
    },
  };
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function target(): Promise<{ root: string; dir: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'unpack-'));
  dirs.push(root);
  const dir = path.join(root, 'target');
  await mkdir(dir);
  return { root, dir };
}

describe('unpackLayers', () => {
  it('builds the tree of several layers with whiteouts, opaque directories, links and modes', async () => {
    const { dir } = await target();
    await unpackLayers(
      [
        layer('layer 0', [
          { name: 'app/', type: 'directory', mode: 0o750 },
          { name: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
          { name: 'app/old.txt', content: 'old' },
          { name: 'app/cache/a', content: 'a' },
          { name: 'app/cache/b', content: 'b' },
        ]),
        layer('layer 1', [
          { name: 'app/.wh.old.txt' },
          { name: 'app/cache/.wh..wh..opq' },
          { name: 'app/cache/c', content: 'c' },
          { name: 'app/current', type: 'symlink', linkname: 'run.sh' },
          { name: 'app/abs', type: 'symlink', linkname: '/app/run.sh' },
          { name: 'app/hard', type: 'link', linkname: 'app/run.sh' },
        ]),
      ],
      dir,
      { allowedPaths: ['app'] },
    );
    expect((await readdir(dir)).sort()).toEqual(['app']);
    expect((await readdir(path.join(dir, 'app'))).sort()).toEqual(['abs', 'cache', 'current', 'hard', 'run.sh']);
    expect(await readdir(path.join(dir, 'app/cache'))).toEqual(['c']);
    expect(await readlink(path.join(dir, 'app/current'))).toBe('run.sh');
    expect((await stat(path.join(dir, 'app/run.sh'))).mode & 0o777).toBe(0o755);
    expect((await stat(path.join(dir, 'app'))).mode & 0o777).toBe(0o750);
    expect((await stat(path.join(dir, 'app/hard'))).ino).toBe((await stat(path.join(dir, 'app/run.sh'))).ino);
    expect((await stat(path.join(dir, 'app/run.sh'))).mtime.getTime()).toBe(1_700_000_000_000);
    expect(await readFile(path.join(dir, 'app/run.sh'), 'utf8')).toContain('echo hi');
  });

  it.each([
    ['a ../ path', [{ name: 'app/../../evil', content: 'x' }], /climbs out with "\.\."/],
    ['an absolute path', [{ name: '/etc/passwd', content: 'x' }], /absolute path/],
    ['a path outside the declared ones', [{ name: 'etc/passwd', content: 'x' }], /outside the paths this image may write/],
    ['a symlink escaping the root', [{ name: 'app/up', type: 'symlink', linkname: '../../../etc/passwd' }], /symlink to .*outside/],
    ['a symlink to a system path', [{ name: 'app/etc', type: 'symlink', linkname: '/etc' }], /symlink to "\/etc", outside/],
    [
      'a write through a symlink',
      [
        { name: 'app/data', type: 'symlink', linkname: 'real' },
        { name: 'app/real/', type: 'directory' },
        { name: 'app/data/x', content: 'x' },
      ],
      /written through the symlink "app\/data"/,
    ],
    ['a device node', [{ name: 'app/null', type: 'character-device' }], /character-device; device nodes, FIFOs and other special files are refused/],
    ['a FIFO', [{ name: 'app/pipe', type: 'fifo' }], /fifo/],
    ['a whiteout of a path outside', [{ name: 'etc/.wh.passwd' }], /deletes "etc\/passwd", outside/],
    ['a hard link to a file outside', [{ name: 'app/shadow', type: 'link', linkname: 'etc/shadow' }], /hard link to "etc\/shadow", outside/],
    ['a hard link to nothing unpacked', [{ name: 'app/x', type: 'link', linkname: 'app/missing' }], /not a regular file unpacked before it/],
  ] as const)('refuses %s and writes nothing', async (_name, entries, message) => {
    const { root, dir } = await target();
    await expect(unpackLayers([layer('layer 0', [{ name: 'app/ok.txt', content: 'fine' }, ...(entries as unknown as Entry[])])], dir, { allowedPaths: ['app'] })).rejects.toThrow(message);
    expect(await readdir(dir)).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(['target']);
  });

  it('shows nothing when a later layer fails its HMAC, even after earlier layers unpacked', async () => {
    const { dir } = await target();
    await expect(
      unpackLayers([layer('layer 0', [{ name: 'app/a', content: 'a' }]), tamperedLayer([{ name: 'app/b', content: 'b' }])], dir, { allowedPaths: ['app'] }),
    ).rejects.toThrow(/HMAC verification failed/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('creates the ancestors of a declared path as directories only', async () => {
    const { dir } = await target();
    await unpackLayers([layer('layer 0', [{ name: 'etc/', type: 'directory' }, { name: 'etc/app/', type: 'directory' }, { name: 'etc/app/config', content: 'c' }])], dir, { allowedPaths: ['etc/app'] });
    expect((await lstat(path.join(dir, 'etc/app/config'))).isFile()).toBe(true);
    await expect(unpackLayers([layer('layer 0', [{ name: 'etc', type: 'symlink', linkname: '/tmp' }])], dir, { allowedPaths: ['etc/app'] })).rejects.toThrow(/outside/);
  });
});
