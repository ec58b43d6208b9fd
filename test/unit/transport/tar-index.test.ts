import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagegateError } from '../../../src/errors.js';
import { READ_CHUNK } from '../../../src/transport/layout-files.js';
import { TarFiles } from '../../../src/transport/tar-index.js';
import { blocks, collect, END_OF_ARCHIVE, paxBody, rawHeader, tarOf, failure } from './tar-fixtures.js';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'imagegate-tar-index-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tarFile(bytes: Buffer): Promise<string> {
  const file = path.join(dir, `t${counter++}.tar`);
  await writeFile(file, bytes);
  return file;
}

async function openTar(bytes: Buffer): Promise<TarFiles> {
  return TarFiles.open(await tarFile(bytes));
}

async function text(files: TarFiles, name: string): Promise<string> {
  return (await collect(await files.open(name))).toString('utf8');
}

describe('TarFiles: regular members', () => {
  it('reads files by name, with ./ and / prefixes normalised, without reading other members', async () => {
    const files = await openTar(
      await tarOf([
        { name: './oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
        { name: 'blobs/', type: 'directory' },
        { name: 'blobs/sha256/abc', content: 'blob abc' },
        { name: 'empty', content: '' },
      ]),
    );
    try {
      expect(await text(files, 'oci-layout')).toBe('{"imageLayoutVersion":"1.0.0"}');
      expect(await text(files, './blobs/sha256/abc')).toBe('blob abc');
      expect(await text(files, '/blobs//sha256/abc')).toBe('blob abc');
      expect(await text(files, 'empty')).toBe('');
      expect(files.size('blobs/sha256/abc')).toBe(8);
      expect((await files.readFile('oci-layout', 1024)).toString()).toContain('imageLayoutVersion');
      expect(await files.exists('oci-layout')).toBe(true);
      expect(await files.exists('blobs')).toBe(true);
      expect(await files.exists('blobs/sha256')).toBe(true); // implied by a member name, no entry of its own
      expect(await files.exists('index.json')).toBe(false);
      expect(files.describe('index.json')).toContain('index.json');
      expect(files.describe('')).toBe(files.file);
    } finally {
      await files.close();
    }
  });

  it('reports missing members as NOT_FOUND and directories or oversized reads as BAD_FORMAT', async () => {
    const files = await openTar(await tarOf([{ name: 'a/b', content: 'x'.repeat(100) }]));
    try {
      expect((await failure(files.open('missing'))).code).toBe('NOT_FOUND');
      expect((await failure(files.readFile('missing', 10))).code).toBe('NOT_FOUND');
      expect((await failure(files.open('a'))).code).toBe('BAD_FORMAT');
      const big = await failure(files.readFile('a/b', 10));
      expect(big.code).toBe('BAD_FORMAT');
      expect(big.message).toContain('larger than');
      expect(() => files.size('a/b/c')).toThrow(ImagegateError);
    } finally {
      await files.close();
    }
  });

  it('streams large members in READ_CHUNK reads, and several members at once', async () => {
    const big = Buffer.alloc(3 * READ_CHUNK + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const other = Buffer.alloc(READ_CHUNK + 1, 0x42);
    const files = await openTar(await tarOf([{ name: 'big', content: big }, { name: 'other', content: other }]));
    try {
      const stream = await files.open('big');
      expect(stream.readableHighWaterMark).toBe(READ_CHUNK);
      const [a, b, c] = await Promise.all([collect(stream), collect(await files.open('other')), collect(await files.open('big'))]);
      expect(a.equals(big)).toBe(true);
      expect(b.equals(other)).toBe(true);
      expect(c.equals(big)).toBe(true);
      expect((await files.head('big', 4)).equals(big.subarray(0, 4))).toBe(true);
    } finally {
      await files.close();
    }
  });

  it('serves many reads from one open archive without leaking listeners on the shared file handle', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    const files = await openTar(await tarOf([{ name: 'f', content: 'x' }]));
    try {
      for (let i = 0; i < 30; i++) expect(await text(files, 'f')).toBe('x');
      await new Promise((resolve) => setTimeout(resolve, 10)); // warnings are emitted on a later tick
    } finally {
      await files.close();
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => w.message)).toEqual([]);
  });

  it('uses the last of several members with the same name, as tar extraction does', async () => {
    const files = await openTar(await tarOf([{ name: 'f', content: 'old' }, { name: 'f', content: 'new' }]));
    try {
      expect(await text(files, 'f')).toBe('new');
    } finally {
      await files.close();
    }
  });
});

describe('TarFiles: long names and large sizes', () => {
  it('reads PAX path records (tar-stream writes them for long names) and ustar name prefixes', async () => {
    const paxName = `blobs/${'p'.repeat(150)}`; // one component longer than 100: only PAX can hold it
    const prefixName = `${'d'.repeat(60)}/${'e'.repeat(60)}/file`; // fits name + prefix
    const tar = await tarOf([
      { name: paxName, content: 'pax' },
      { name: prefixName, content: 'prefix' },
    ]);
    expect(tar.toString('latin1')).toContain(' path=');
    const files = await openTar(tar);
    try {
      expect(await text(files, paxName)).toBe('pax');
      expect(await text(files, prefixName)).toBe('prefix');
      expect(files.names().sort()).toEqual([paxName, prefixName].sort());
    } finally {
      await files.close();
    }
  });

  it('reads GNU L/K long names, PAX linkpath and size records, and base-256 sizes', async () => {
    const longName = `gnu/${'n'.repeat(200)}`;
    const longTarget = `gnu/${'n'.repeat(200)}`;
    const paxSized = 'x'.repeat(700);
    const tar = Buffer.concat([
      rawHeader({ name: '././@LongLink', typeflag: 'L', size: Buffer.byteLength(longName) + 1, format: 'gnu' }),
      blocks(`${longName}\0`),
      rawHeader({ name: longName.slice(0, 100), typeflag: '0', size: 3, format: 'gnu' }),
      blocks('gnu'),
      rawHeader({ name: '././@LongLink', typeflag: 'K', size: Buffer.byteLength(longTarget), format: 'gnu' }),
      blocks(longTarget),
      rawHeader({ name: 'gnu-link', typeflag: '2', linkname: 'ignored', format: 'gnu' }),
      // PAX: the size record wins over the header's (zero) size field, path and linkpath over name and linkname.
      rawHeader({ name: 'PaxHeader/x', typeflag: 'x', size: paxBody({ path: 'pax/sized', size: String(paxSized.length) }).length }),
      blocks(paxBody({ path: 'pax/sized', size: String(paxSized.length) })),
      rawHeader({ name: 'short', typeflag: '0', size: 0 }),
      blocks(paxSized),
      rawHeader({ name: 'PaxHeader/y', typeflag: 'x', size: paxBody({ linkpath: 'pax/sized' }).length }),
      blocks(paxBody({ linkpath: 'pax/sized' })),
      rawHeader({ name: 'pax-link', typeflag: '2', linkname: 'nowhere' }),
      rawHeader({ name: 'b256', typeflag: '0', size: 600, base256: true }),
      blocks(Buffer.alloc(600, 0x61)),
      rawHeader({ name: 'v7file', typeflag: '0', size: 2, format: 'v7' }),
      blocks('v7'),
      END_OF_ARCHIVE,
    ]);
    const files = await openTar(tar);
    try {
      expect(await text(files, longName)).toBe('gnu');
      expect(await text(files, 'gnu-link')).toBe('gnu');
      expect(await text(files, 'pax/sized')).toBe(paxSized);
      expect(await text(files, 'pax-link')).toBe(paxSized);
      expect(await text(files, 'b256')).toBe('a'.repeat(600));
      expect(await text(files, 'v7file')).toBe('v7');
    } finally {
      await files.close();
    }
  });
});

describe('TarFiles: links', () => {
  it('follows docker save style relative symlinks, absolute and ./ targets, directory symlinks and hard links', async () => {
    const files = await openTar(
      await tarOf([
        { name: 'aaa/layer.tar', content: 'layer bytes' },
        { name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' },
        { name: 'ccc/layer.tar', type: 'symlink', linkname: './../bbb/./layer.tar' },
        { name: 'abs', type: 'symlink', linkname: '/aaa/layer.tar' },
        { name: 'dirlink', type: 'symlink', linkname: 'aaa' },
        // A hard link's target is another member's name from the archive root, not relative to the link.
        { name: 'deep/hard', type: 'link', linkname: 'aaa/layer.tar' },
        { name: 'escape', type: 'symlink', linkname: '../../../aaa/layer.tar' },
      ]),
    );
    try {
      for (const name of ['bbb/layer.tar', 'ccc/layer.tar', 'abs', 'dirlink/layer.tar', 'deep/hard', 'escape']) {
        expect(await text(files, name), name).toBe('layer bytes');
        expect(files.size(name)).toBe(11);
      }
      expect(await files.exists('dirlink')).toBe(true);
    } finally {
      await files.close();
    }
  });

  it('refuses symlink loops and reports dangling links as missing', async () => {
    const files = await openTar(
      await tarOf([
        { name: 'a', type: 'symlink', linkname: 'b' },
        { name: 'b', type: 'symlink', linkname: './a' },
        { name: 'self/x', type: 'symlink', linkname: '../self/x' },
        { name: 'dangling', type: 'symlink', linkname: 'nothing/here' },
      ]),
    );
    try {
      const loop = await failure(files.open('a'));
      expect(loop.code).toBe('BAD_FORMAT');
      expect(loop.message).toMatch(/loop/);
      expect((await failure(files.open('self/x'))).code).toBe('BAD_FORMAT');
      expect((await failure(files.open('dangling'))).code).toBe('NOT_FOUND');
      expect(await files.exists('dangling')).toBe(false);
    } finally {
      await files.close();
    }
  });
});

describe('TarFiles: broken and compressed archives', () => {
  it('tells the user to decompress a gzip- or zstd-compressed archive', async () => {
    const tar = await tarOf([{ name: 'a', content: 'a' }]);
    const gz = await failure(openTar(gzipSync(tar)));
    expect(gz.code).toBe('BAD_FORMAT');
    expect(gz.message).toMatch(/gzip-compressed.*decompress it first/);
    const zst = await failure(openTar(Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(600)])));
    expect(zst.code).toBe('BAD_FORMAT');
    expect(zst.message).toMatch(/zstd-compressed.*decompress/);
  });

  it('refuses truncated archives: cut inside a member, inside a header, or before the end marker', async () => {
    const tar = await tarOf([
      { name: 'first', content: 'x'.repeat(2000) },
      { name: 'second', content: 'y'.repeat(10) },
    ]);
    for (const cut of [1000, 2560 + 100, 3072, 3584]) {
      const e = await failure(openTar(tar.subarray(0, cut)));
      expect(e.code, `cut at ${cut}`).toBe('BAD_FORMAT');
      expect(e.message).toContain('truncated');
    }
  });

  it('refuses corrupt headers, non-tar files, empty files and missing files', async () => {
    const tar = await tarOf([{ name: 'first', content: 'x' }, { name: 'second', content: 'y' }]);
    const corrupt = Buffer.from(tar);
    corrupt[1024] = 0x5a; // first byte of the second header's name
    const e = await failure(openTar(corrupt));
    expect(e.code).toBe('BAD_FORMAT');
    expect(e.message).toMatch(/bad checksum/);
    const json = await failure(openTar(Buffer.from(JSON.stringify({ not: 'a tar' }).padEnd(2048, ' '))));
    expect(json.code).toBe('BAD_FORMAT');
    expect(json.message).toMatch(/not a valid tar archive/);
    expect((await failure(openTar(Buffer.alloc(0)))).code).toBe('BAD_FORMAT');
    expect((await failure(TarFiles.open(path.join(dir, 'does-not-exist.tar')))).code).toBe('NOT_FOUND');
    expect((await failure(TarFiles.open(dir))).code).toBe('BAD_FORMAT');
  });
});
