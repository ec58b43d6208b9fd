import { createWriteStream } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, rm, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { isWithin, normalizeEntryName, resolveLinkTarget } from './layer-paths.js';
import { StagingArea, type UnpackTarget } from './staging.js';
import { TarEndGuard } from './tar-end-guard.js';
import { DEFAULT_MAX_UNPACKED_BYTES, UnpackedSizeLimit } from './unpacked-size-limit.js';

export interface UnpackLayer {
  label: string;
  /**
   * The layer as an uncompressed tar. The stream must end only once the whole layer was read and verified (its
   * digest, and for an encrypted layer its HMAC), and fail otherwise: its end is what lets the layer commit. A stream
   * that ends where gunzip or tar stop would commit unverified bytes (see wholeLayerStream).
   */
  open(): Promise<Readable>;
}

export interface UnpackOptions {
  /** Image-root-relative paths the layers may write (e.g. `app`, `etc/app`); `''` allows everything. */
  allowedPaths: string[];
  /** The most uncompressed bytes all layers together may have (default DEFAULT_MAX_UNPACKED_BYTES). */
  maxUnpackedBytes?: number;
  /** Keep setuid, setgid and sticky bits; by default they are dropped whoever unpacks. */
  keepSpecialBits?: boolean;
}

export interface UnpackReport {
  entries: number;
  bytes: number;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const IS_ROOT = process.getuid?.() === 0;
/** Permission bits without setuid, setgid and sticky. */
const PERMISSIONS = 0o777;

/**
 * Unpacks layers in order into `target` the way a runtime builds a rootfs (OCI whiteouts and opaque directories
 * included), refusing anything that could reach outside: absolute names, `..`, writing through a symlink, symlinks
 * and hard links pointing out of the allowed paths, device nodes and FIFOs, whiteouts of paths it was not given.
 * Every declared path stages in a hidden directory of its own (see StagingArea), and its content appears only after
 * every layer was read to its verified end: an encrypted layer whose HMAC fails, trailing data, or more than the
 * size limit leaves nothing behind.
 */
export async function unpackLayers(layers: readonly UnpackLayer[], target: string, options: UnpackOptions): Promise<UnpackReport> {
  const allowed = options.allowedPaths.map((p) => normalizeEntryName(p, 'allowed paths'));
  const staging = await StagingArea.create(target, allowed);
  const state = new UnpackState(staging, allowed, options);
  try {
    for (const layer of layers) await state.layer(layer);
    // All verified: now, and only now, the content becomes visible.
    await staging.commit();
    await state.finishDirectories();
    return { entries: state.entries, bytes: state.bytes };
  } finally {
    await staging.discard();
  }
}

interface DirectoryAttributes {
  mode: number;
  mtime?: Date;
  uid: number;
  gid: number;
}

class UnpackState {
  entries = 0;
  bytes = 0;
  /** Directory attributes are applied last, after the commit, so a read-only directory stops neither later entries nor the move. */
  private readonly dirs = new Map<string, DirectoryAttributes>();
  /** Paths created by the layer being unpacked, which an opaque whiteout in the same layer must keep. */
  private currentLayer = new Set<string>();
  private readonly limit: UnpackedSizeLimit;
  private readonly modeMask: number;

  constructor(
    private readonly staging: StagingArea,
    private readonly allowed: string[],
    options: UnpackOptions,
  ) {
    this.limit = new UnpackedSizeLimit(options.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES);
    this.modeMask = options.keepSpecialBits === true ? 0o7777 : PERMISSIONS;
  }

  async layer(layer: UnpackLayer): Promise<void> {
    this.currentLayer = new Set();
    const input = await layer.open();
    // Errors reach us through the pipeline below; this keeps a late one (after the pipeline let go) from being an
    // uncaught 'error' event that would take the whole process down.
    input.on('error', () => {});
    const tar = extract();
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        input.destroy();
        tar.destroy();
        reject(e);
      };
      // One entry at a time: the extractor waits for `next` before parsing the following one.
      tar.on('entry', (header, content, next) => {
        // The same goes for an entry's stream, which the extractor destroys with the layer's error (an HMAC failure
        // can arrive while a file is still being written).
        content.on('error', () => {});
        this.entry(header, content, layer.label).then(
          () => {
            content.resume();
            next();
          },
          (e: unknown) => {
            content.resume();
            fail(e);
          },
        );
      });
      // A read error, a digest mismatch or an HMAC failure at the end of the layer fails it here, and so do too
      // many bytes and anything after the end of the archive.
      pipeline(input, this.limit.meter(layer.label), new TarEndGuard(layer.label), tar as unknown as NodeJS.WritableStream).then(() => {
        if (!failed) resolve();
      }, fail);
    });
  }

  private async entry(h: Header, content: AsyncIterable<unknown>, label: string): Promise<void> {
    const rel = normalizeEntryName(h.name, label);
    if (rel === '') return;
    const where = `${label}: ${JSON.stringify(h.name)}`;
    const base = path.posix.basename(rel);
    const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    this.entries++;

    if (base === OPAQUE) {
      this.mustBeAllowed(dir, where, 'makes opaque');
      await this.parentsOf(rel, where);
      await this.clearDirectory(dir);
      return;
    }
    if (base.startsWith(WHITEOUT)) {
      const removed = path.posix.join(dir, base.slice(WHITEOUT.length));
      const owner = this.mustBeAllowed(removed, where, 'deletes');
      this.mustNotHoldATarget(removed, where, 'deletes');
      await this.parentsOf(removed, where);
      // The declared path itself stays (it may be a volume); what lower layers put in it goes.
      if (removed === owner.rel) await this.clearDirectory(removed);
      else await rm(this.staged(removed), { recursive: true, force: true });
      return;
    }

    const type = h.type ?? 'file';
    // An ancestor of a declared path (`etc` for `etc/app`): it exists, or is made when committing, as a directory.
    if (type === 'directory' && this.staging.holdsATarget(rel)) return;
    const owner = this.mustBeAllowed(rel, where, 'writes');
    this.mustNotHoldATarget(rel, where, `makes a ${type} of`);
    if (rel === owner.rel && type !== 'directory') {
      throw new ImagegateError('INTEGRITY', `${where} would replace the declared path ${JSON.stringify(rel)} itself with a ${type}; refused`);
    }
    await this.parentsOf(rel, where);
    this.currentLayer.add(rel);
    const file = this.staged(rel);
    switch (type) {
      case 'directory':
        await this.ensureDirectory(rel, h);
        return;
      case 'file':
      case 'contiguous-file': {
        await this.replace(rel);
        await pipeline(Readable.from(content), createWriteStream(file, { mode: 0o600 }));
        this.bytes += h.size ?? 0;
        await this.attributes(file, h);
        return;
      }
      case 'symlink': {
        const linkTarget = h.linkname ?? '';
        const resolved = resolveLinkTarget(rel, linkTarget);
        if (resolved === undefined || !isWithin(resolved, this.allowed)) {
          throw new ImagegateError('INTEGRITY', `${where} is a symlink to ${JSON.stringify(linkTarget)}, outside the paths this image may write; refused`);
        }
        await this.replace(rel);
        await symlink(linkTarget, file);
        if (IS_ROOT) await lchown(file, h.uid ?? 0, h.gid ?? 0).catch(() => {});
        if (h.mtime !== undefined) await lutimes(file, h.mtime, h.mtime).catch(() => {});
        return;
      }
      case 'link': {
        const from = normalizeEntryName(h.linkname ?? '', label);
        if (!isWithin(from, this.allowed)) throw new ImagegateError('INTEGRITY', `${where} is a hard link to ${JSON.stringify(h.linkname)}, outside the paths this image may write; refused`);
        await this.parentsOf(from, where);
        const source = this.staged(from);
        const existing = await lstat(source).catch(() => undefined);
        if (existing === undefined || !existing.isFile()) {
          throw new ImagegateError('INTEGRITY', `${where} is a hard link to ${JSON.stringify(h.linkname)}, which is not a regular file unpacked before it; refused`);
        }
        await this.replace(rel);
        await link(source, file).catch(async (e: unknown) => {
          // Two declared paths may be two volumes: a link between them becomes a copy, as it would in any copy of the tree.
          if (systemErrorCode(e) !== 'EXDEV') throw e;
          await copyFile(source, file);
          await chmod(file, existing.mode & 0o7777);
        });
        return;
      }
      default:
        throw new ImagegateError('INTEGRITY', `${where} is a ${type}; device nodes, FIFOs and other special files are refused`);
    }
  }

  private mustBeAllowed(rel: string, where: string, verb: string): UnpackTarget {
    const owner = this.staging.ownerOf(rel);
    if (owner === undefined) {
      throw new ImagegateError('INTEGRITY', `${where} ${verb} ${JSON.stringify(rel)}, outside the paths this image may write (${this.allowed.join(', ') || 'none'}); refused`);
    }
    return owner;
  }

  /** A directory that holds another declared path (a volume of its own, in the pod model) is never replaced or deleted. */
  private mustNotHoldATarget(rel: string, where: string, verb: string): void {
    if (this.staging.holdsATarget(rel)) {
      throw new ImagegateError('INTEGRITY', `${where} ${verb} ${JSON.stringify(rel)}, which holds another declared path (${this.allowed.join(', ')}); refused`);
    }
  }

  /**
   * Creates missing parent directories below the declared path; refuses to go through a symlink or a file. The
   * declared path and its ancestors are real directories, checked when staging began.
   */
  private async parentsOf(rel: string, where: string): Promise<void> {
    const owner = this.staging.ownerOf(rel)!;
    const parts = rel.split('/').slice(0, -1);
    let current = '';
    for (const part of parts) {
      current = current === '' ? part : `${current}/${part}`;
      if (current === owner.rel || !isWithin(current, [owner.rel])) continue;
      const abs = this.staged(current);
      const st = await lstat(abs).catch((e: unknown) => {
        if (systemErrorCode(e) === 'ENOENT') return undefined;
        throw e;
      });
      if (st === undefined) {
        await mkdir(abs, { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new ImagegateError('INTEGRITY', `${where} would be written through the symlink ${JSON.stringify(current)}; refused`);
      } else if (!st.isDirectory()) {
        throw new ImagegateError('INTEGRITY', `${where} needs ${JSON.stringify(current)} to be a directory, but an earlier entry made it a file`);
      }
    }
  }

  private async ensureDirectory(rel: string, h: Header): Promise<void> {
    const abs = this.staged(rel);
    const st = await lstat(abs).catch(() => undefined);
    if (st !== undefined && !st.isDirectory()) await rm(abs, { force: true });
    if (st === undefined || !st.isDirectory()) await mkdir(abs, { mode: 0o755 });
    this.dirs.set(rel, { mode: (h.mode ?? 0o755) & this.modeMask, ...(h.mtime !== undefined ? { mtime: h.mtime } : {}), uid: h.uid ?? 0, gid: h.gid ?? 0 });
  }

  /** Clears what lower layers put in `dir` (an opaque whiteout), keeping what this layer already added. */
  private async clearDirectory(dir: string): Promise<void> {
    const names = await readdir(this.staged(dir)).catch(() => [] as string[]);
    for (const name of names) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      if (this.currentLayer.has(rel) || this.staging.holdsATarget(rel)) continue;
      await rm(this.staged(rel), { recursive: true, force: true });
    }
  }

  private async replace(rel: string): Promise<void> {
    await rm(this.staged(rel), { recursive: true, force: true });
  }

  private async attributes(file: string, h: Header): Promise<void> {
    // Owner first: a chown clears setuid and setgid, which chmod then sets only when they are kept.
    if (IS_ROOT) await lchown(file, h.uid ?? 0, h.gid ?? 0).catch(() => {});
    await chmod(file, (h.mode ?? 0o644) & this.modeMask);
    if (h.mtime !== undefined) await utimes(file, h.mtime, h.mtime).catch(() => {});
  }

  /** Owners, modes and times of directories, where they ended up. Best effort: a volume's root may refuse them. */
  async finishDirectories(): Promise<void> {
    // Deepest first, so a directory made read-only does not stop its children being set.
    const dirs = [...this.dirs].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [rel, { mode, mtime, uid, gid }] of dirs) {
      const abs = this.staging.final(rel, this.staging.ownerOf(rel)!);
      if (IS_ROOT) await lchown(abs, uid, gid).catch(() => {});
      await chmod(abs, mode).catch(() => {});
      if (mtime !== undefined) await utimes(abs, mtime, mtime).catch(() => {});
    }
  }

  private staged(rel: string): string {
    return this.staging.staged(rel, this.staging.ownerOf(rel)!);
  }
}
