import { randomBytes } from 'node:crypto';
import path from 'node:path';

/** A hidden staging directory beside the target, so the final rename stays on one file system. */
export function stagingDirFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.imagegate-${randomBytes(6).toString('hex')}`);
}

export function tempFileFor(target: string): string {
  return `${target}.tmp-${randomBytes(6).toString('hex')}`;
}
