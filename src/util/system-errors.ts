import { statfsSync } from 'node:fs';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { formatMebibytes } from './size.js';

/**
 * Operating-system failures a user can fix (a full disk, a port someone else holds, a file where a directory should
 * be) turned into ImagegateErrors that name the cause and the remedy, with the exit code of their class. Anything
 * not listed here stays an internal error: guessing a remedy for a failure we do not understand would mislead.
 */

/** Codes that mean "the file system cannot take more": the remedy is space, not a retry. */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

export function isNoSpace(e: unknown): boolean {
  const code = systemErrorCode(e);
  return code !== undefined && NO_SPACE_CODES.has(code);
}

/**
 * "1.0 MiB free of 8.0 MiB" for the file system holding `target` (or its nearest existing parent, since a staging
 * directory may already be gone); undefined when even that cannot be asked.
 */
export function freeSpaceOf(target: string): string | undefined {
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    try {
      const s = statfsSync(dir);
      return `${formatMebibytes(s.bavail * s.bsize)} free of ${formatMebibytes(s.blocks * s.bsize)}`;
    } catch (e) {
      const code = systemErrorCode(e);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || path.dirname(dir) === dir) return undefined;
    }
  }
}

/**
 * A full disk while writing `target` (a destination, a staging directory): exit 6, with the path and the free space
 * of its file system, and what to do. `description` is how the user named it (`oci:./out:1`).
 */
export function noSpaceError(e: unknown, target: string, description: string): ImagegateError {
  const free = freeSpaceOf(target);
  const quota = systemErrorCode(e) === 'EDQUOT' ? 'the disk quota is used up' : 'no space left on the device';
  return new ImagegateError(
    'IO',
    `${description}: ${quota} while writing ${path.resolve(target)}${free !== undefined ? ` (its file system: ${free})` : ''}; ` +
      'free some space there, or write to a file system with room for the whole image',
    { cause: e },
  );
}

/** Any failure as our typed error when it is one or can be classified (a full disk, a port in use); undefined for a bug. */
export function asImagegateError(e: unknown): ImagegateError | undefined {
  return e instanceof ImagegateError ? e : errorFromSystemFailure(e);
}

/**
 * The typed error for a system failure that reached the top without one, or undefined for failures that are ours
 * to explain (a bug). Only errors that carry enough to name the cause are mapped.
 */
function errorFromSystemFailure(e: unknown): ImagegateError | undefined {
  const code = systemErrorCode(e);
  if (code === undefined) return undefined;
  const file = pathOf(e);
  if (NO_SPACE_CODES.has(code)) {
    if (file !== undefined) return noSpaceError(e, file, file);
    return new ImagegateError('IO', `${code === 'EDQUOT' ? 'the disk quota is used up' : 'no space left on the device'} (${code}); free some space and try again`, { cause: e });
  }
  if (code === 'EADDRINUSE') {
    const address = addressOf(e);
    return new ImagegateError('USAGE', `${address ?? 'the address'} is already in use by another process; stop that process or choose another port`, { cause: e });
  }
  if (code === 'EADDRNOTAVAIL') {
    const address = addressOf(e);
    return new ImagegateError('USAGE', `${address ?? 'the address'} is not an address of this machine; listen on one of its own addresses, or 0.0.0.0`, { cause: e });
  }
  if (file === undefined) return undefined;
  if (code === 'EACCES' || code === 'EPERM') return new ImagegateError('IO', `permission denied on ${file} (${code}); check who owns it and its mode`, { cause: e });
  if (code === 'EROFS') return new ImagegateError('IO', `${file} is on a read-only file system; write somewhere else`, { cause: e });
  return undefined;
}

function pathOf(e: unknown): string | undefined {
  const p = (e as { path?: unknown }).path;
  return typeof p === 'string' && p !== '' ? p : undefined;
}

/** `127.0.0.1:8443` from a listen error's address and port. */
export function addressOf(e: unknown): string | undefined {
  const { address, port } = e as { address?: unknown; port?: unknown };
  if (typeof address !== 'string') return undefined;
  const host = address.includes(':') ? `[${address}]` : address;
  return typeof port === 'number' ? `${host}:${port}` : host;
}
