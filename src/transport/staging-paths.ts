import { randomBytes } from 'node:crypto';
import path from 'node:path';

/** What every staging directory of `target` is named with: hidden, beside it, so the final rename stays on one file system. */
export function stagingPrefixFor(target: string): string {
  return `.${path.basename(target)}.imagegate-`;
}

/** A fresh staging directory name for `target`; created by `createStagingDir` (staging-owner.ts). */
export function stagingDirFor(target: string): string {
  return path.join(path.dirname(target), `${stagingPrefixFor(target)}${randomBytes(6).toString('hex')}`);
}
