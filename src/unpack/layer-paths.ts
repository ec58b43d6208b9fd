import { ImagegateError } from '../errors.js';

/**
 * Path rules for unpacking layers into a target: every name is relative to the image root, has no `..` and is
 * not absolute, and stays inside the paths the layers were declared to write.
 */
export function normalizeEntryName(name: string, where: string): string {
  if (name.startsWith('/')) throw new ImagegateError('INTEGRITY', `${where}: entry ${JSON.stringify(name)} is an absolute path; refused`);
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new ImagegateError('INTEGRITY', `${where}: entry ${JSON.stringify(name)} climbs out with ".."; refused`);
    parts.push(part);
  }
  return parts.join('/');
}

/**
 * Resolves a symlink's target (as stored in the link) to an image-root-relative path, or undefined when it points
 * above the root. Absolute targets are relative to the image root, as they are inside the container.
 */
export function resolveLinkTarget(linkPath: string, target: string): string | undefined {
  const base = target.startsWith('/') ? [] : linkPath.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (base.length === 0) return undefined;
      base.pop();
    } else {
      base.push(part);
    }
  }
  return base.join('/');
}

/** Inside one of `allowed` (a path or anything under it). */
export function isWithin(path: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => a === '' || path === a || path.startsWith(`${a}/`));
}

/** An ancestor directory of an allowed path (`etc` for `etc/app`): may exist as a directory, nothing more. */
export function isAncestorOf(path: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => a.startsWith(`${path}/`));
}
