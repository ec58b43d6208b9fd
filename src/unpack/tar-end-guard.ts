import { Transform, type TransformCallback } from 'node:stream';
import { ImagegateError } from '../errors.js';

const BLOCK = 512;
/** tar-stream's own limit for a PAX or GNU long-name body. */
const MAX_EXTENDED_HEADER = 4 * 1024 * 1024;
/** Typeflags (as tar-stream numbers them: the byte minus '0') of PAX headers, local and global. */
const PAX = 72;
const PAX_GLOBAL = 55;
/** GNU long link name, long name, and the old long name: a body that only names the next member. */
const GNU_LONG = new Set([27, 28, 30]);
const DIRECTORY = 5;
/** Links, devices and FIFOs: no data, for Go's archive/tar (and every runtime built on it) whatever the size says. */
const HEADER_ONLY: Readonly<Record<number, string>> = { 1: 'hard link', 2: 'symlink', 3: 'character device', 4: 'block device', 6: 'FIFO' };

/**
 * Passes a layer's tar through unchanged while following its block structure the way tar-stream (our extractor)
 * does, and fails when anything but zeros follows the end of the archive: its first all-zero header block. tar-stream
 * skips zero blocks and reads on, so members hidden after the end marker would be unpacked here although GNU tar and
 * Go's archive/tar (the runtimes) stop there. Zeros after the end are fine: tar pads archives to whole records.
 *
 * The one place where tar-stream and Go disagree on where the next header starts, a link, device or FIFO whose size
 * field is not zero, is refused for the same reason.
 */
export class TarEndGuard extends Transform {
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of member data and padding still to pass before the next header. */
  private skip = 0;
  /** The body of a PAX header being collected (the part of `skip` that is not padding). */
  private extended: { global: boolean; parts: Buffer[]; missing: number } | undefined;
  private pax: Record<string, string> | undefined;
  private paxGlobal: Record<string, string> | undefined;
  private ended = false;
  private offset = 0;

  constructor(private readonly label: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.scan(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.ended) {
        const nonZero = chunk.findIndex((b, at) => at >= i && b !== 0);
        if (nonZero >= 0) {
          throw new ImagegateError(
            'INTEGRITY',
            `${this.label}: the tar archive has data at byte ${this.offset + nonZero - i} after its end-of-archive block; anything there is invisible to other tar readers, so the layer is refused`,
          );
        }
        this.offset += chunk.length - i;
        return;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.extended !== undefined && this.extended.missing > 0) {
          const take = Math.min(n, this.extended.missing);
          this.extended.parts.push(Buffer.from(chunk.subarray(i, i + take)));
          this.extended.missing -= take;
        }
        this.skip -= n;
        i += n;
        this.offset += n;
        if (this.skip === 0 && this.extended !== undefined) this.endExtended();
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      this.offset += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeader(this.header, this.offset - BLOCK);
      }
    }
  }

  private onHeader(h: Buffer, at: number): void {
    // tar-stream's test for an empty header: every byte but the checksum field is zero.
    if (h.every((b, index) => b === 0 || (index >= 148 && index < 156))) {
      this.ended = true;
      return;
    }
    let type = h[156] === 0 ? 0 : h[156]! - 48;
    let size = headerNumber(h.subarray(124, 136));
    const where = `${this.label}: the tar header at byte ${at}`;
    if (size === undefined || !(size >= 0)) throw new ImagegateError('INTEGRITY', `${where} has an invalid size field; refused`);
    // Old tars mark directories only by a trailing slash (tar-stream and Go read them so).
    if (type === 0 && nameOf(h).endsWith('/')) type = DIRECTORY;

    if (type === PAX || type === PAX_GLOBAL) {
      if (size > MAX_EXTENDED_HEADER) throw new ImagegateError('INTEGRITY', `${where} has a PAX header of ${size} bytes; refused`);
      this.extended = { global: type === PAX_GLOBAL, parts: [], missing: size };
      this.skip = size + padding(size);
      if (this.skip === 0) this.endExtended();
      return;
    }
    if (GNU_LONG.has(type)) {
      this.skip = size + padding(size);
      return;
    }
    // A member: a PAX `size` record (from the last local PAX header) overrides its size field, as tar-stream has it.
    if (this.pax !== undefined) {
      if (this.pax.size !== undefined && this.pax.size !== '') size = /^\d+$/.test(this.pax.size) ? Number(this.pax.size) : NaN;
      this.pax = undefined;
      if (!Number.isSafeInteger(size)) throw new ImagegateError('INTEGRITY', `${where} has an invalid PAX size; refused`);
    }
    if (size === 0 || type === DIRECTORY) return;
    const kind = HEADER_ONLY[type];
    if (kind !== undefined) {
      throw new ImagegateError('INTEGRITY', `${where} is a ${kind} with ${size} bytes of data, which tar readers disagree about; refused`);
    }
    this.skip = size + padding(size);
  }

  private endExtended(): void {
    const { global, parts } = this.extended!;
    this.extended = undefined;
    const records = paxRecords(Buffer.concat(parts), this.label);
    if (global) this.paxGlobal = records;
    else this.pax = { ...this.paxGlobal, ...records };
  }
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** A numeric header field as tar-stream reads it: octal text (leading spaces and NULs skipped), or base-256. */
function headerNumber(field: Buffer): number | undefined {
  if ((field[0]! & 0x80) !== 0) {
    if (field[0] !== 0x80) return undefined; // 0xff is negative; anything else tar-stream cannot read
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end < 0) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (start === end) return 0;
  return parseInt(field.subarray(start, end).toString('latin1'), 8);
}

/** `name`, with the ustar prefix in front, as far as its last character goes (all the slash test needs). */
function nameOf(h: Buffer): string {
  const cString = (b: Buffer): string => {
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('latin1');
  };
  const name = cString(h.subarray(0, 100));
  const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
  return ustar && h[345] !== 0 ? `${cString(h.subarray(345, 500))}/${name}` : name;
}

/**
 * PAX records, `<length> <key>=<value>\n`. Where tar-stream would give up silently on a malformed record (and might
 * then read sizes differently from us), this refuses instead; NUL padding after the last record ends the list.
 */
function paxRecords(body: Buffer, label: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = body;
  while (rest.length > 0 && rest[0] !== 0) {
    const space = rest.indexOf(0x20);
    const lengthText = space < 0 ? '' : rest.subarray(0, space).toString('latin1');
    const length = /^\d+$/.test(lengthText) ? Number(lengthText) : NaN;
    const record = length > space + 1 && length <= rest.length ? rest.subarray(space + 1, length - 1).toString('utf8') : undefined;
    const eq = record?.indexOf('=') ?? -1;
    if (record === undefined || eq < 0) throw new ImagegateError('INTEGRITY', `${label}: a PAX header of the tar archive has a malformed record; refused`);
    out[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(length);
  }
  return out;
}
