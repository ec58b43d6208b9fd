import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { isImagegateError } from '../../../src/errors.js';
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

function rawLayer(label: string, bytes: Buffer): UnpackLayer {
  return { label, open: async () => Readable.from([bytes]) };
}

/** A ustar header written by hand, for entries tar-stream's packer will not write (a symlink with data, a PAX size). */
function rawHeader(name: string, typeflag: string, size: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('14520000000\0', 136);
  h.write(typeflag, 156);
  h.write(linkname, 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** Data padded to whole 512-byte blocks. */
function blocks(data: Buffer | string): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

const END = Buffer.alloc(1024);

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

  it('refuses entries hidden after the end-of-archive block (other tar readers stop there), writing nothing', async () => {
    const { dir } = await target();
    const bytes = Buffer.concat([await tarOf([{ name: 'app/a', content: 'a' }]), await tarOf([{ name: 'app/hidden', content: 'evil' }])]);
    const err = await unpackLayers([rawLayer('layer 0', bytes)], dir, { allowedPaths: ['app'] }).catch((e: unknown) => e);
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toMatch(/^layer 0: the tar archive has data at byte 2048 after its end-of-archive block; .* refused$/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses entries after a single zero block too', async () => {
    const { dir } = await target();
    const first = await tarOf([{ name: 'app/a', content: 'a' }]);
    const bytes = Buffer.concat([first.subarray(0, first.length - 512), await tarOf([{ name: 'app/b', content: 'b' }])]);
    await expect(unpackLayers([rawLayer('layer 0', bytes)], dir, { allowedPaths: ['app'] })).rejects.toThrow(/after its end-of-archive block/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('accepts zeros after the end of the archive (tar pads to whole records)', async () => {
    const { dir } = await target();
    const bytes = Buffer.concat([await tarOf([{ name: 'app/a', content: 'a' }]), Buffer.alloc(10 * 1024)]);
    await unpackLayers([rawLayer('layer 0', bytes)], dir, { allowedPaths: ['app'] });
    expect(await readFile(path.join(dir, 'app/a'), 'utf8')).toBe('a');
    // `app` was made at commit from a private staging directory, with the usual mode since no entry gave it one.
    expect((await stat(path.join(dir, 'app'))).mode & 0o777).toBe(0o755);
  });

  it('refuses a symlink that carries data (tar readers disagree on where the next header is)', async () => {
    const { dir } = await target();
    const bytes = Buffer.concat([rawHeader('app/l', '2', 5, 'a'), blocks('xxxxx'), END]);
    await expect(unpackLayers([rawLayer('layer 0', bytes)], dir, { allowedPaths: ['app'] })).rejects.toThrow(/is a symlink with 5 bytes of data, which tar readers disagree about; refused/);
  });

  it('follows a PAX size record, as the extractor does, to find the next header', async () => {
    const { dir } = await target();
    const data = 'p'.repeat(600);
    const bytes = Buffer.concat([rawHeader('PaxHeader', 'x', 12), blocks('12 size=600\n'), rawHeader('app/big', '0', 0), blocks(data), rawHeader('app/next', '0', 4), blocks('next'), END]);
    await unpackLayers([rawLayer('layer 0', bytes)], dir, { allowedPaths: ['app'] });
    expect(await readFile(path.join(dir, 'app/big'), 'utf8')).toBe(data);
    expect(await readFile(path.join(dir, 'app/next'), 'utf8')).toBe('next');
  });

  it('refuses layers that unpack to more than the limit, counted over all layers, writing nothing', async () => {
    const { dir } = await target();
    const layers = [layer('layer 0', [{ name: 'app/a', content: 'a' }]), layer('layer 1', [{ name: 'app/b', content: 'b' }])];
    // Each tar is 2048 bytes: a header, a data block and the two end blocks.
    await unpackLayers(layers, dir, { allowedPaths: ['app'], maxUnpackedBytes: 4096 });
    const { dir: small } = await target();
    const err = await unpackLayers(layers, small, { allowedPaths: ['app'], maxUnpackedBytes: 4095 }).catch((e: unknown) => e);
    expect(isImagegateError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toMatch(/^layer 1: the layers unpack to more than 4095 bytes, the limit for one unpack; nothing was written/);
    expect(await readdir(small)).toEqual([]);
  });

  it('drops setuid, setgid and sticky bits unless asked to keep them', async () => {
    const entries: Entry[] = [
      { name: 'app/', type: 'directory', mode: 0o1777 },
      { name: 'app/suid', content: 's', mode: 0o4755 },
      { name: 'app/sgid', content: 's', mode: 0o2755 },
      { name: 'app/shared/', type: 'directory', mode: 0o3775 },
    ];
    const modes = async (dir: string): Promise<number[]> => Promise.all(['app', 'app/suid', 'app/sgid', 'app/shared'].map(async (p) => (await lstat(path.join(dir, p))).mode & 0o7777));
    const { dir } = await target();
    await unpackLayers([layer('layer 0', entries)], dir, { allowedPaths: ['app'] });
    expect(await modes(dir)).toEqual([0o777, 0o755, 0o755, 0o775]);
    const { dir: kept } = await target();
    await unpackLayers([layer('layer 0', entries)], kept, { allowedPaths: ['app'], keepSpecialBits: true });
    expect(await modes(kept)).toEqual([0o1777, 0o4755, 0o2755, 0o3775]);
  });
});

describe('unpackLayers into existing target directories (the pod model\'s volumes)', () => {
  it('moves entries into an existing declared directory, keeping it, and clears its leftovers of an interrupted run', async () => {
    const { dir } = await target();
    await mkdir(path.join(dir, 'app/.imagegate-unpack-0123456789ab'), { recursive: true });
    await writeFile(path.join(dir, 'app/.imagegate-unpack-0123456789ab/unverified'), 'x');
    await writeFile(path.join(dir, 'app/kept'), 'from before');
    const before = (await stat(path.join(dir, 'app'))).ino;
    await unpackLayers([layer('layer 0', [{ name: 'app/', type: 'directory' }, { name: 'app/a', content: 'a' }])], dir, { allowedPaths: ['app'] });
    expect((await stat(path.join(dir, 'app'))).ino).toBe(before);
    expect((await readdir(path.join(dir, 'app'))).sort()).toEqual(['a', 'kept']);
  });

  it('leaves an existing declared directory as it was when a layer fails', async () => {
    const { dir } = await target();
    await mkdir(path.join(dir, 'app'));
    await expect(unpackLayers([layer('layer 0', [{ name: 'app/a', content: 'a' }]), tamperedLayer([{ name: 'app/b', content: 'b' }])], dir, { allowedPaths: ['app'] })).rejects.toThrow(/HMAC/);
    expect(await readdir(path.join(dir, 'app'))).toEqual([]);
  });

  it('keeps a declared path below another one, and refuses to replace or delete it', async () => {
    const { dir } = await target();
    await mkdir(path.join(dir, 'app/data'), { recursive: true });
    const dataIno = (await stat(path.join(dir, 'app/data'))).ino;
    const allowedPaths = ['app', 'app/data', 'app/x/y'];
    await unpackLayers(
      [layer('layer 0', [{ name: 'app/', type: 'directory' }, { name: 'app/run', content: 'r' }, { name: 'app/data/', type: 'directory' }, { name: 'app/data/d', content: 'd' }, { name: 'app/x/z', content: 'z' }, { name: 'app/x/y/w', content: 'w' }])],
      dir,
      { allowedPaths },
    );
    expect((await stat(path.join(dir, 'app/data'))).ino).toBe(dataIno);
    expect((await readdir(path.join(dir, 'app'))).sort()).toEqual(['data', 'run', 'x']);
    expect(await readFile(path.join(dir, 'app/data/d'), 'utf8')).toBe('d');
    expect((await readdir(path.join(dir, 'app/x'))).sort()).toEqual(['y', 'z']);
    expect(await readFile(path.join(dir, 'app/x/y/w'), 'utf8')).toBe('w');
    await expect(unpackLayers([layer('layer 0', [{ name: 'app/data', content: 'file' }])], dir, { allowedPaths })).rejects.toThrow(/would replace the declared path "app\/data" itself with a file/);
    await expect(unpackLayers([layer('layer 0', [{ name: 'app/x', type: 'symlink', linkname: 'run' }])], dir, { allowedPaths })).rejects.toThrow(/makes a symlink of "app\/x", which holds another declared path/);
    await expect(unpackLayers([layer('layer 0', [{ name: 'app/.wh.x' }])], dir, { allowedPaths })).rejects.toThrow(/deletes "app\/x", which holds another declared path/);
  });

  it('refuses a declared path that is a symlink', async () => {
    const { root, dir } = await target();
    await mkdir(path.join(root, 'elsewhere'));
    await symlink(path.join(root, 'elsewhere'), path.join(dir, 'app'));
    const err = await unpackLayers([layer('layer 0', [{ name: 'app/a', content: 'a' }])], dir, { allowedPaths: ['app'] }).catch((e: unknown) => e);
    expect(isImagegateError(err, 'DESTINATION')).toBe(true);
    expect((err as Error).message).toMatch(/app is a symlink; each unpack target must be a directory/);
    expect(await readdir(path.join(root, 'elsewhere'))).toEqual([]);
  });

  // A rename onto a mount point fails with EBUSY, and so did the unpack into the webhook's emptyDir volumes.
  it.skipIf(!canMountHere())('unpacks into a declared path that is a mount point (tmpfs), and leaves it empty on failure', async (ctx) => {
    const { dir } = await target();
    const volume = path.join(dir, 'app');
    await mkdir(volume);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', volume]).status !== 0) ctx.skip('this machine does not allow mounting tmpfs');
    try {
      await expect(unpackLayers([layer('layer 0', [{ name: 'app/a', content: 'a' }]), tamperedLayer([{ name: 'app/b', content: 'b' }])], dir, { allowedPaths: ['app'] })).rejects.toThrow(/HMAC/);
      expect(await readdir(volume)).toEqual([]);
      await unpackLayers([layer('layer 0', [{ name: 'app/', type: 'directory', mode: 0o750 }, { name: 'app/a', content: 'a' }, { name: 'app/sub/b', content: 'b' }])], dir, { allowedPaths: ['app'] });
      expect((await readdir(volume)).sort()).toEqual(['a', 'sub']);
      expect(await readFile(path.join(volume, 'sub/b'), 'utf8')).toBe('b');
      expect((await stat(volume)).mode & 0o777).toBe(0o750);
      expect(await readFile('/proc/self/mountinfo', 'utf8')).toContain(` ${volume} `);
    } finally {
      spawnSync('umount', [volume]);
    }
  });
});

it.skipIf(!canMountHere())('copies a hard link between two declared paths that are separate volumes', async (ctx) => {
  const { dir } = await target();
  const volumes = [path.join(dir, 'app'), path.join(dir, 'etc/app')];
  const mounted: string[] = [];
  try {
    for (const v of volumes) {
      await mkdir(v, { recursive: true });
      if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', v]).status !== 0) ctx.skip('this machine does not allow mounting tmpfs');
      mounted.push(v);
    }
    await unpackLayers([layer('layer 0', [{ name: 'app/tool', content: 'bin', mode: 0o750 }, { name: 'etc/app/tool', type: 'link', linkname: 'app/tool' }])], dir, { allowedPaths: ['app', 'etc/app'] });
    expect(await readFile(path.join(dir, 'etc/app/tool'), 'utf8')).toBe('bin');
    expect((await stat(path.join(dir, 'etc/app/tool'))).mode & 0o777).toBe(0o750);
  } finally {
    for (const v of mounted) spawnSync('umount', [v]);
  }
});

function canMountHere(): boolean {
  return process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
}
