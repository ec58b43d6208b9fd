import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, rename, rm, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { isAncestorOf, isWithin, normalizeEntryName, resolveLinkTarget } from './layer-paths.js';

export interface UnpackLayer {
  label: string;
  /** The layer as an uncompressed tar. For an encrypted layer the stream fails at its end if the HMAC does not verify. */
  open(): Promise<Readable>;
}

export interface UnpackOptions {
  /** Image-root-relative paths the layers may write (e.g. `app`, `etc/app`); `''` allows everything. */
  allowedPaths: string[];
}

export interface UnpackReport {
  entries: number;
  bytes: number;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const IS_ROOT = process.getuid?.() === 0;

/**
 * Unpacks layers in order into `target` the way a runtime builds a rootfs (OCI whiteouts and opaque directories
 * included), refusing anything that could reach outside: absolute names, `..`, writing through a symlink, symlinks
 * and hard links pointing out of the allowed paths, device nodes and FIFOs, whiteouts of paths it was not given.
 * Everything lands in a hidden staging directory first and appears in `target` only after every layer was read to
 * its end, so an encrypted layer whose HMAC fails leaves nothing behind.
 */
export async function unpackLayers(layers: readonly UnpackLayer[], target: string, options: UnpackOptions): Promise<UnpackReport> {
  const staging = path.join(target, `.imagegate-unpack-${randomBytes(6).toString('hex')}`);
  await mkdir(staging, { recursive: true });
  const state = new UnpackState(staging, options.allowedPaths.map((p) => normalizeEntryName(p, 'allowed paths')));
  try {
    for (const layer of layers) await state.layer(layer);
    await state.finishModes();
    // All verified: now, and only now, the content becomes visible.
    for (const name of await readdir(staging)) {
      await rm(path.join(target, name), { recursive: true, force: true });
      await rename(path.join(staging, name), path.join(target, name));
    }
    return { entries: state.entries, bytes: state.bytes };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

class UnpackState {
  entries = 0;
  bytes = 0;
  /** Directory modes are applied last, so a read-only directory does not stop later entries. */
  private readonly dirModes = new Map<string, { mode: number; mtime?: Date }>();
  /** Paths created by the layer being unpacked, which an opaque whiteout in the same layer must keep. */
  private currentLayer = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly allowed: string[],
  ) {}

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
      // A read error, a digest mismatch or an HMAC failure at the end of the layer fails it here.
      pipeline(input, tar as unknown as NodeJS.WritableStream).then(() => {
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
      this.mustBeAllowed(removed, where, 'deletes');
      await this.parentsOf(removed, where);
      await rm(this.abs(removed), { recursive: true, force: true });
      return;
    }

    const type = h.type ?? 'file';
    if (type === 'directory' && isAncestorOf(rel, this.allowed)) {
      await this.parentsOf(rel, where);
      await this.ensureDirectory(rel, h);
      return;
    }
    this.mustBeAllowed(rel, where, 'writes');
    await this.parentsOf(rel, where);
    this.currentLayer.add(rel);
    switch (type) {
      case 'directory':
        await this.ensureDirectory(rel, h);
        return;
      case 'file':
      case 'contiguous-file': {
        await this.replace(rel);
        await pipeline(Readable.from(content), createWriteStream(this.abs(rel), { mode: 0o600 }));
        this.bytes += h.size ?? 0;
        await this.attributes(rel, h);
        return;
      }
      case 'symlink': {
        const linkTarget = h.linkname ?? '';
        const resolved = resolveLinkTarget(rel, linkTarget);
        if (resolved === undefined || !isWithin(resolved, this.allowed)) {
          throw new ImagegateError('INTEGRITY', `${where} is a symlink to ${JSON.stringify(linkTarget)}, outside the paths this image may write; refused`);
        }
        await this.replace(rel);
        await symlink(linkTarget, this.abs(rel));
        if (IS_ROOT) await lchown(this.abs(rel), h.uid ?? 0, h.gid ?? 0).catch(() => {});
        if (h.mtime !== undefined) await lutimes(this.abs(rel), h.mtime, h.mtime).catch(() => {});
        return;
      }
      case 'link': {
        const from = normalizeEntryName(h.linkname ?? '', label);
        if (!isWithin(from, this.allowed)) throw new ImagegateError('INTEGRITY', `${where} is a hard link to ${JSON.stringify(h.linkname)}, outside the paths this image may write; refused`);
        await this.parentsOf(from, where);
        const existing = await lstat(this.abs(from)).catch(() => undefined);
        if (existing === undefined || !existing.isFile()) {
          throw new ImagegateError('INTEGRITY', `${where} is a hard link to ${JSON.stringify(h.linkname)}, which is not a regular file unpacked before it; refused`);
        }
        await this.replace(rel);
        await link(this.abs(from), this.abs(rel));
        return;
      }
      default:
        throw new ImagegateError('INTEGRITY', `${where} is a ${type}; device nodes, FIFOs and other special files are refused`);
    }
  }

  private mustBeAllowed(rel: string, where: string, verb: string): void {
    if (!isWithin(rel, this.allowed)) {
      throw new ImagegateError('INTEGRITY', `${where} ${verb} ${JSON.stringify(rel)}, outside the paths this image may write (${this.allowed.join(', ') || 'none'}); refused`);
    }
  }

  /** Creates missing parent directories; refuses to go through a symlink or a file. */
  private async parentsOf(rel: string, where: string): Promise<void> {
    const parts = rel.split('/').slice(0, -1);
    let current = '';
    for (const part of parts) {
      current = current === '' ? part : `${current}/${part}`;
      const st = await lstat(this.abs(current)).catch((e: unknown) => {
        if (systemErrorCode(e) === 'ENOENT') return undefined;
        throw e;
      });
      if (st === undefined) {
        await mkdir(this.abs(current), { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new ImagegateError('INTEGRITY', `${where} would be written through the symlink ${JSON.stringify(current)}; refused`);
      } else if (!st.isDirectory()) {
        throw new ImagegateError('INTEGRITY', `${where} needs ${JSON.stringify(current)} to be a directory, but an earlier entry made it a file`);
      }
    }
  }

  private async ensureDirectory(rel: string, h: Header): Promise<void> {
    const st = await lstat(this.abs(rel)).catch(() => undefined);
    if (st !== undefined && !st.isDirectory()) await rm(this.abs(rel), { force: true });
    if (st === undefined || !st.isDirectory()) await mkdir(this.abs(rel), { mode: 0o755 });
    this.dirModes.set(rel, { mode: (h.mode ?? 0o755) & 0o7777, ...(h.mtime !== undefined ? { mtime: h.mtime } : {}) });
    if (IS_ROOT) await lchown(this.abs(rel), h.uid ?? 0, h.gid ?? 0).catch(() => {});
  }

  /** Clears what lower layers put in `dir` (an opaque whiteout), keeping what this layer already added. */
  private async clearDirectory(dir: string): Promise<void> {
    const names = await readdir(this.abs(dir)).catch(() => [] as string[]);
    for (const name of names) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      if (rel.startsWith('.imagegate-unpack-') || this.currentLayer.has(rel)) continue;
      await rm(this.abs(rel), { recursive: true, force: true });
    }
  }

  private async replace(rel: string): Promise<void> {
    await rm(this.abs(rel), { recursive: true, force: true });
  }

  private async attributes(rel: string, h: Header): Promise<void> {
    await chmod(this.abs(rel), (h.mode ?? 0o644) & 0o7777);
    if (IS_ROOT) await lchown(this.abs(rel), h.uid ?? 0, h.gid ?? 0).catch(() => {});
    if (h.mtime !== undefined) await utimes(this.abs(rel), h.mtime, h.mtime).catch(() => {});
  }

  async finishModes(): Promise<void> {
    // Deepest first, so a directory made read-only does not stop its children being set.
    const dirs = [...this.dirModes].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [rel, { mode, mtime }] of dirs) {
      await chmod(this.abs(rel), mode).catch(() => {});
      if (mtime !== undefined) await utimes(this.abs(rel), mtime, mtime).catch(() => {});
    }
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
  }
}
