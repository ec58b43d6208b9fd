import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { isWithin } from './layer-paths.js';

/** Hidden directories that hold what is being unpacked until every layer verified. */
const STAGING_PREFIX = '.imagegate-unpack-';

/** One declared path: where its content goes, and where it waits until then. */
export interface UnpackTarget {
  /** Image-root-relative (`app`, `etc/app`); `''` for the whole root. */
  rel: string;
  /** The directory it ends up in. */
  dir: string;
  /** The hidden directory its content is staged in. */
  staging: string;
  /**
   * The directory existed (in the pod model: a volume, often a mount point): staged entries are moved into it one by
   * one, and it is never renamed or removed. Otherwise the staging directory is renamed to it.
   */
  existed: boolean;
}

/**
 * The staging side of an unpack. Each declared path stages inside its own directory when that exists (so staging and
 * target are on the same filesystem, even when the target is a volume of its own, and nothing outside the volumes
 * needs to be writable: the pod model's root filesystem is read-only), or else beside it in its nearest existing
 * ancestor. Committing moves entries, never the target itself: a mount point can be neither renamed nor removed.
 */
export class StagingArea {
  /** Deepest first, so the owner of a path is the most specific declared path holding it. */
  private readonly byDepth: UnpackTarget[];

  private constructor(readonly targets: readonly UnpackTarget[]) {
    this.byDepth = [...targets].sort((a, b) => depth(b.rel) - depth(a.rel));
  }

  static async create(root: string, declared: readonly string[]): Promise<StagingArea> {
    const rels = [...new Set(declared)].sort((a, b) => depth(a) - depth(b));
    const rootStat = await lstatOrUndefined(root);
    if (rootStat === undefined) await mkdir(root, { recursive: true });
    else if (!rootStat.isDirectory()) throw new ImagegateError('DESTINATION', `cannot unpack into ${root}: it is not a directory`);
    const places = [];
    for (const rel of rels) places.push(await placeOf(root, rel));
    // A staging directory left by a run that was killed holds unverified bytes; it must not outlive this run.
    for (const dir of new Set(places.map((p) => p.stagingParent))) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.startsWith(STAGING_PREFIX)) await rm(path.join(dir, name), { recursive: true, force: true }).catch(() => {});
      }
    }
    const targets: UnpackTarget[] = [];
    try {
      for (const place of places) targets.push(await stage(place));
    } catch (e) {
      await Promise.all(targets.map((t) => rm(t.staging, { recursive: true, force: true })));
      throw e;
    }
    return new StagingArea(targets);
  }

  /** The declared path `rel` belongs to, the most specific one; undefined outside them all. */
  ownerOf(rel: string): UnpackTarget | undefined {
    return this.byDepth.find((t) => isWithin(rel, [t.rel]));
  }

  /** Whether `rel` is a directory that holds another declared path below it (it stays as it is: never replaced). */
  holdsATarget(rel: string): boolean {
    return this.targets.some((t) => t.rel.startsWith(`${rel}/`));
  }

  staged(rel: string, owner: UnpackTarget): string {
    return below(owner.staging, rel, owner.rel);
  }

  final(rel: string, owner: UnpackTarget): string {
    return below(owner.dir, rel, owner.rel);
  }

  /** Makes every staged entry visible: shallow targets first, so a deeper one's parents exist by its turn. */
  async commit(): Promise<void> {
    for (const t of this.targets) {
      if (t.existed) {
        await this.moveEntries(t.staging, t.dir, t.rel);
        await rmdir(t.staging);
      } else {
        await mkdir(path.dirname(t.dir), { recursive: true });
        await rename(t.staging, t.dir);
        // Staging is private (0700); the directory gets the usual mode unless a layer gives it one.
        await chmod(t.dir, 0o755);
      }
    }
  }

  /** Removes whatever is still staged; after a failure, nothing of this run is left. */
  async discard(): Promise<void> {
    await Promise.all(this.targets.map((t) => rm(t.staging, { recursive: true, force: true })));
  }

  /**
   * Moves `from`'s entries into `to`, replacing entries of the same name. A directory that holds another declared
   * path is merged instead (that path may be a mount point below it), and so stays where it is.
   */
  private async moveEntries(from: string, to: string, rel: string): Promise<void> {
    for (const name of await readdir(from)) {
      const entryRel = rel === '' ? name : `${rel}/${name}`;
      if (this.holdsATarget(entryRel)) {
        if ((await lstatOrUndefined(path.join(to, name))) === undefined) await mkdir(path.join(to, name), { mode: 0o755 });
        await this.moveEntries(path.join(from, name), path.join(to, name), entryRel);
        await rmdir(path.join(from, name));
        continue;
      }
      await rm(path.join(to, name), { recursive: true, force: true });
      await rename(path.join(from, name), path.join(to, name));
    }
  }
}

interface Place {
  rel: string;
  dir: string;
  existed: boolean;
  /** The directory itself when it exists, else its nearest existing ancestor. */
  stagingParent: string;
}

/** Where `rel` ends up and where it can stage; refuses symlinks and files on the way (they could lead elsewhere). */
async function placeOf(root: string, rel: string): Promise<Place> {
  const dir = rel === '' ? root : path.join(root, ...rel.split('/'));
  let existing = root;
  for (const part of rel === '' ? [] : rel.split('/')) {
    const next = path.join(existing, part);
    const st = await lstatOrUndefined(next);
    if (st === undefined) return { rel, dir, existed: false, stagingParent: existing };
    if (!st.isDirectory()) {
      throw new ImagegateError(
        'DESTINATION',
        `cannot unpack "${rel}" into ${dir}: ${next} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; each unpack target must be a directory (in the pod model, the volume the webhook mounts there)`,
      );
    }
    existing = next;
  }
  return { rel, dir, existed: true, stagingParent: dir };
}

async function stage({ rel, dir, existed, stagingParent }: Place): Promise<UnpackTarget> {
  const staging = path.join(stagingParent, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(staging, { mode: 0o700 });
  } catch (e) {
    const code = systemErrorCode(e) ?? String(e);
    throw new ImagegateError(
      'DESTINATION',
      existed
        ? `cannot unpack "${rel}" into ${dir}: creating the staging directory ${staging} failed (${code}); the directory must be writable by this user (uid ${process.getuid?.() ?? '?'})`
        : `cannot unpack "${rel}": ${dir} does not exist and ${stagingParent} is not writable for it (${code}); create ${dir} writable by this user (in the pod model the webhook mounts a volume there)`,
      { cause: e },
    );
  }
  return { rel, dir, staging, existed };
}

/** `rel` (inside `baseRel`) as a path below `base`. */
function below(base: string, rel: string, baseRel: string): string {
  const rest = baseRel === '' ? rel : rel.slice(baseRel.length + 1);
  return rest === '' ? base : path.join(base, ...rest.split('/'));
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}

async function lstatOrUndefined(p: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(p);
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}
