import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { readAll } from '../util/streams.js';
import { READ_CHUNK, type LayoutFiles } from './layout-files.js';

/**
 * Random access to the members of an uncompressed tar file, for `oci-archive:` and `docker-archive:`.
 *
 * Why not tar-stream (which the writers use): its extractor is a one-pass stream with no member offsets, so
 * reading `index.json` at the end of an archive would mean streaming every layer before it, and reading blobs
 * in the order an image needs them would mean extracting the archive to disk first (what skopeo does). Instead
 * this scans only the 512-byte headers with positional reads, remembers where each regular file's bytes start,
 * and later streams any member straight from the archive. Opening a multi-GiB archive reads a few KiB.
 */

const BLOCK = 512;
/** PAX and GNU long-name records hold names and a few numbers; anything larger is not a sane archive. */
const MAX_META_BYTES = 1024 * 1024;
/** The same limit as Linux's ELOOP: deeper chains of links are loops or abuse. */
const MAX_LINK_HOPS = 40;

type Member =
  | { kind: 'file'; offset: number; size: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'hardlink'; target: string }
  | { kind: 'directory' }
  | { kind: 'other'; type: string };

/** Where a path ends up after following links. */
type Resolved = { kind: 'file'; name: string; offset: number; size: number } | { kind: 'directory'; name: string } | { kind: 'other'; name: string; type: string };

/** Extended attributes from PAX `x` and GNU `L`/`K` records that apply to the next real header. */
interface PendingMeta {
  path?: string;
  linkpath?: string;
  size?: number;
}

/** Magic numbers of compressors people wrap archives in; a tar header never starts with any of them. */
const COMPRESSIONS: Array<{ name: string; magic: number[]; hint: string }> = [
  { name: 'gzip', magic: [0x1f, 0x8b], hint: 'gunzip -k' },
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd], hint: 'zstd -d' },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], hint: 'xz -dk' },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68], hint: 'bunzip2 -k' },
];

export class TarFiles implements LayoutFiles {
  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    private readonly members: ReadonlyMap<string, Member>,
    /** Directories implied by member names, so `blobs/sha256` exists even when the archive has no entry for it. */
    private readonly impliedDirs: ReadonlySet<string>,
  ) {}

  /** Opens `file` and indexes its headers; throws BAD_FORMAT for compressed, truncated or corrupt archives. */
  static async open(file: string): Promise<TarFiles> {
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (e) {
      if (systemErrorCode(e) === 'ENOENT') throw new ImagegateError('NOT_FOUND', `${file} does not exist`);
      throw new ImagegateError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const st = await handle.stat();
      if (st.isDirectory()) {
        throw new ImagegateError('BAD_FORMAT', `${file} is a directory, but an archive transport needs a tar file (use oci:${file} for an OCI layout directory)`);
      }
      const members = await scan(handle, file, st.size);
      const impliedDirs = new Set<string>();
      for (const name of members.keys()) {
        for (let dir = parentOf(name); dir !== ''; dir = parentOf(dir)) impliedDirs.add(dir);
      }
      return new TarFiles(file, handle, members, impliedDirs);
    } catch (e) {
      await handle.close();
      if (e instanceof ImagegateError) throw e;
      throw new ImagegateError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
  }

  describe(relPath: string): string {
    const name = normalizeName(relPath);
    return name === '' ? this.file : `${name} in ${this.file}`;
  }

  async exists(relPath: string): Promise<boolean> {
    const r = this.resolve(relPath);
    return r !== undefined && r.kind !== 'other';
  }

  async open(relPath: string): Promise<Readable> {
    const member = this.regularFile(relPath);
    return new MemberStream(this.handle, member.offset, member.size, this.describe(relPath));
  }

  async readFile(relPath: string, limit: number): Promise<Buffer> {
    const member = this.regularFile(relPath);
    if (member.size > limit) {
      throw new ImagegateError('BAD_FORMAT', `${this.describe(relPath)} is ${member.size} bytes, larger than the ${limit} bytes allowed for it`);
    }
    return readAll(await this.open(relPath), limit, this.describe(relPath));
  }

  /** The size of a regular file member (after following links); throws NOT_FOUND when it is missing. */
  size(relPath: string): number {
    return this.regularFile(relPath).size;
  }

  /** The first `length` bytes of a member (fewer if it is shorter): enough to sniff a compression magic. */
  async head(relPath: string, length: number): Promise<Buffer> {
    const member = this.regularFile(relPath);
    const buf = Buffer.alloc(Math.min(length, member.size));
    if (buf.length === 0) return buf;
    const { bytesRead } = await this.handle.read(buf, 0, buf.length, member.offset);
    return buf.subarray(0, bytesRead);
  }

  /** Every member name as stored (normalised), in no particular order; for diagnostics and tests. */
  names(): string[] {
    return [...this.members.keys()];
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private regularFile(relPath: string): { offset: number; size: number } {
    const r = this.resolve(relPath);
    if (r === undefined) throw new ImagegateError('NOT_FOUND', `${this.describe(relPath)} does not exist`);
    if (r.kind === 'directory') throw new ImagegateError('BAD_FORMAT', `${this.describe(relPath)} is a directory, not a file`);
    if (r.kind === 'other') {
      throw new ImagegateError('UNSUPPORTED', `${this.describe(relPath)} is a tar member of type ${JSON.stringify(r.type)}, not a regular file`);
    }
    return r;
  }

  /**
   * Follows symlinks (relative to the directory of the link, or to the archive root when absolute) and hard
   * links (whose target is another member's name, as tar defines them) component by component, so a link to
   * a directory works too. `docker save` stores duplicate layers as `../<id>/layer.tar` symlinks.
   */
  private resolve(relPath: string): Resolved | undefined {
    let hops = 0;
    let pending = normalizeName(relPath).split('/').filter((c) => c !== '');
    let done = '';
    while (pending.length > 0) {
      const component = pending.shift()!;
      const name = done === '' ? component : `${done}/${component}`;
      const member = this.members.get(name);
      if (member?.kind === 'symlink' || member?.kind === 'hardlink') {
        if (++hops > MAX_LINK_HOPS) {
          throw new ImagegateError(
            'BAD_FORMAT',
            `${this.describe(relPath)} goes through more than ${MAX_LINK_HOPS} links (a symlink loop?); the archive is corrupt, re-create it`,
          );
        }
        const target =
          member.kind === 'hardlink' || member.target.startsWith('/')
            ? normalizeName(member.target)
            : normalizeName(path.posix.join(parentOf(name), member.target));
        // Start over from the target: it may itself go through links.
        pending = [...target.split('/').filter((c) => c !== ''), ...pending];
        done = '';
        continue;
      }
      if (pending.length > 0 && member !== undefined && member.kind !== 'directory') return undefined; // a file used as a directory
      done = name;
    }
    if (done === '') return { kind: 'directory', name: '' };
    const member = this.members.get(done);
    if (member === undefined) return this.impliedDirs.has(done) ? { kind: 'directory', name: done } : undefined;
    switch (member.kind) {
      case 'file':
        return { kind: 'file', name: done, offset: member.offset, size: member.size };
      case 'directory':
        return { kind: 'directory', name: done };
      case 'other':
        return { kind: 'other', name: done, type: member.type };
      default:
        return undefined; // links were followed above
    }
  }
}

/**
 * Streams one member with positional reads on the archive's shared handle, so any number of members can be read
 * at once. (`FileHandle.createReadStream` would do, but it adds a 'close' listener to the handle per stream and
 * never removes it, which leaks across the hundreds of blobs one archive can serve.)
 */
class MemberStream extends Readable {
  private position: number;
  private remaining: number;

  constructor(
    private readonly handle: FileHandle,
    offset: number,
    size: number,
    private readonly what: string,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.position = offset;
    this.remaining = size;
  }

  override _read(): void {
    if (this.remaining === 0) {
      this.push(null);
      return;
    }
    const length = Math.min(READ_CHUNK, this.remaining);
    const buf = Buffer.allocUnsafe(length);
    this.handle.read(buf, 0, length, this.position).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) {
          this.destroy(new ImagegateError('IO', `${this.what} ends ${this.remaining} bytes early: was the archive changed while being read?`));
          return;
        }
        this.position += bytesRead;
        this.remaining -= bytesRead;
        this.push(bytesRead === length ? buf : buf.subarray(0, bytesRead));
      },
      (e: unknown) => this.destroy(new ImagegateError('IO', `cannot read ${this.what}: ${(e as Error).message}`, { cause: e })),
    );
  }
}

/**
 * `./a//b/` and `/a/b` name the member `a/b`; `..` components are folded so `a/../b` is `b`, and a `..` above
 * the root stays at the root, so no link can point outside the archive.
 */
function normalizeName(name: string): string {
  const n = path.posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return n === '.' ? '' : n;
}

function parentOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

/** Walks the headers from the start of the archive to the end-of-archive marker. */
async function scan(handle: FileHandle, file: string, fileSize: number): Promise<Map<string, Member>> {
  const corrupt = (why: string): ImagegateError =>
    new ImagegateError('BAD_FORMAT', `${file} is not a valid tar archive: ${why}; re-create or re-download it`);
  const truncated = (why: string): ImagegateError =>
    new ImagegateError('BAD_FORMAT', `${file} is truncated: ${why}; re-create or re-download it`);

  if (fileSize === 0) throw corrupt('the file is empty');
  const first = await readAt(handle, 0, Math.min(BLOCK, fileSize));
  for (const c of COMPRESSIONS) {
    if (c.magic.every((b, i) => first[i] === b)) {
      throw new ImagegateError(
        'BAD_FORMAT',
        `${file} is ${c.name}-compressed, but oci-archive: and docker-archive: read plain tar files; decompress it first (e.g. \`${c.hint} ${file}\`) and name the .tar`,
      );
    }
  }

  if (fileSize < BLOCK) throw corrupt(`it is ${fileSize} bytes long, shorter than one tar header`);

  const members = new Map<string, Member>();
  let meta: PendingMeta = {};
  let pos = 0;
  for (;;) {
    if (pos + BLOCK > fileSize) {
      throw truncated(
        pos === fileSize
          ? `it ends at byte ${pos} without the end-of-archive marker`
          : `it ends at byte ${fileSize}, inside the header that starts at byte ${pos}`,
      );
    }
    const header = pos === 0 && first.length === BLOCK ? first : await readAt(handle, pos, BLOCK);
    if (header.length < BLOCK) throw truncated(`the header at byte ${pos} is incomplete`);
    if (header.every((b) => b === 0)) {
      // One zero block ends the archive (POSIX asks for two; GNU tar accepts one, and so do we).
      if (Object.keys(meta).length > 0) throw truncated(`extended header records at byte ${pos} are not followed by a member`);
      return members;
    }
    checkChecksum(header, pos, pos === 0 ? 'no tar header at its start (is it a tar file?)' : undefined, corrupt);

    const typeflag = header[156] === 0 ? '0' : String.fromCharCode(header[156]!);
    const headerSize = readNumber(header, 124, 12, pos, 'size', corrupt);
    const bodyOffset = pos + BLOCK;
    const isMeta = typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K';
    // PAX `size` overrides the header's field (that is how members of 8 GiB and more are stored by pax writers).
    const size = !isMeta && meta.size !== undefined ? meta.size : headerSize;
    // Links, devices, FIFOs and directories carry no data whatever their size field says (as Go's archive/tar).
    const bodySize = '123456'.includes(typeflag) ? 0 : size;
    const next = bodyOffset + Math.ceil(bodySize / BLOCK) * BLOCK;
    if (bodyOffset + bodySize > fileSize) {
      throw truncated(`the member at byte ${pos} declares ${bodySize} bytes of data, but the file ends at byte ${fileSize}`);
    }

    if (isMeta) {
      if (bodySize > MAX_META_BYTES) throw corrupt(`the extended header at byte ${pos} is ${bodySize} bytes long`);
      const body = await readAt(handle, bodyOffset, bodySize);
      if (typeflag === 'x') meta = { ...meta, ...parsePax(body, pos, corrupt) };
      else if (typeflag === 'L') meta.path = cString(body);
      else if (typeflag === 'K') meta.linkpath = cString(body);
      // `g` (PAX global) records hold defaults such as comments or mtimes; none of them changes where bytes are.
      pos = next;
      continue;
    }

    let name = meta.path ?? ustarName(header);
    const linkname = meta.linkpath ?? cString(header.subarray(157, 257));
    meta = {};
    let type = typeflag;
    // Pre-POSIX tars mark directories only with a trailing slash.
    if (type === '0' && name.endsWith('/')) type = '5';
    name = normalizeName(name);

    switch (type) {
      case '0':
      case '7': // contiguous file: a regular file for every reader
        members.set(name, { kind: 'file', offset: bodyOffset, size });
        break;
      case '1':
        members.set(name, { kind: 'hardlink', target: linkname });
        break;
      case '2':
        members.set(name, { kind: 'symlink', target: linkname });
        break;
      case '5':
      case 'D': // GNU dumpdir: a directory with a listing as data
        if (name !== '') members.set(name, { kind: 'directory' });
        break;
      default:
        members.set(name, { kind: 'other', type });
    }
    pos = next;
  }
}

/** The header checksum: the byte sum with the checksum field read as spaces; old tars summed signed bytes. */
function checkChecksum(header: Buffer, pos: number, firstHeaderWhy: string | undefined, corrupt: (why: string) => ImagegateError): void {
  const field = cString(header.subarray(148, 156)).trim();
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  const stored = /^[0-7]+$/.test(field) ? parseInt(field, 8) : NaN;
  if (stored !== unsigned && stored !== signed) {
    throw corrupt(firstHeaderWhy ?? `the header at byte ${pos} has a bad checksum (the file is damaged, or something was appended or cut out)`);
  }
}

/** A numeric header field: octal text, or GNU/star base-256 when the top bit of the first byte is set. */
function readNumber(header: Buffer, offset: number, length: number, pos: number, what: string, corrupt: (why: string) => ImagegateError): number {
  const field = header.subarray(offset, offset + length);
  if ((field[0]! & 0x80) !== 0) {
    if (field[0] === 0xff) throw corrupt(`the ${what} of the header at byte ${pos} is negative`);
    let value = BigInt(field[0]! & 0x7f);
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`the ${what} of the header at byte ${pos} is too large`);
    return Number(value);
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw corrupt(`the ${what} of the header at byte ${pos} is not an octal number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/** `name`, with the ustar `prefix` in front when the header is POSIX ustar (GNU headers use that space otherwise). */
function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 263).toString('latin1');
  if (magic === 'ustar\0') {
    const prefix = cString(header.subarray(345, 500));
    if (prefix !== '') return `${prefix}/${name}`;
  }
  return name;
}

/** Text up to the first NUL, as UTF-8 (what Docker, Go and tar-stream write). */
function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

/** PAX extended header records: `<length> <key>=<value>\n`, where length counts the whole record in bytes. */
function parsePax(body: Buffer, pos: number, corrupt: (why: string) => ImagegateError): PendingMeta {
  const out: PendingMeta = {};
  let i = 0;
  while (i < body.length) {
    if (body[i] === 0) break; // padding some writers leave after the last record
    const space = body.indexOf(0x20, i);
    const lengthText = space < 0 ? '' : body.subarray(i, space).toString('latin1');
    const length = /^[0-9]+$/.test(lengthText) ? parseInt(lengthText, 10) : NaN;
    if (!(length > space - i + 1) || i + length > body.length || body[i + length - 1] !== 0x0a) {
      throw corrupt(`the PAX extended header at byte ${pos} has a malformed record at offset ${i}`);
    }
    const record = body.subarray(space + 1, i + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw corrupt(`the PAX extended header at byte ${pos} has a record without "=" at offset ${i}`);
    const key = record.subarray(0, eq).toString('utf8');
    const value = record.subarray(eq + 1).toString('utf8');
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else if (key === 'size') {
      if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw corrupt(`the PAX extended header at byte ${pos} has an invalid size ${JSON.stringify(value)}`);
      }
      out.size = Number(value);
    }
    i += length;
  }
  return out;
}
