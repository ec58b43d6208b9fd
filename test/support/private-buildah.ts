/**
 * Debian's buildah with storage of its own under a directory the test owns: `--root`, `--runroot` and the `vfs` driver
 * (plain directories: no overlay mounts, so it works as root in a sandbox and leaves nothing mounted), its own
 * storage.conf, auth file, signature policy and TMPDIR. The host's /var/lib/containers/storage is never opened.
 * (containers/image still updates its blob-info cache under /var/lib/containers/cache as root, as skopeo does.)
 */
import { randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run, runOk, type RunOptions, type RunResult } from './tools.js';

export interface PrivateBuildah {
  /** Runs `buildah` with the private storage flags first; never throws on exit code. */
  run(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Like `run`, but a non-zero exit throws with the command line and output. */
  ok(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** The flag pull, push and from need so no host policy.json is read: accept anything (tests use local images). */
  policyFlag: string;
  /** Pulls the OCI layout `layoutDir` tagged `tag` into the storage; returns the image ID. */
  pullOciLayout(layoutDir: string, tag: string): Promise<string>;
  /** The content of `file` (a path inside the image) in the root filesystem of `image`, read through a working container. */
  readImageFile(image: string, file: string): Promise<string>;
}

/** A buildah whose whole state lives under `dir` (created if missing). */
export async function privateBuildah(bin: string, dir: string): Promise<PrivateBuildah> {
  const root = path.join(dir, 'root');
  const runroot = path.join(dir, 'run');
  const tmp = path.join(dir, 'tmp');
  await mkdir(tmp, { recursive: true });
  const storageConf = path.join(dir, 'storage.conf');
  await writeFile(storageConf, `[storage]\ndriver = "vfs"\ngraphroot = ${JSON.stringify(root)}\nrunroot = ${JSON.stringify(runroot)}\n`);
  // buildah refuses an auth file that does not exist; an empty one keeps the host's credentials out.
  const authFile = path.join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: {} }));
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));

  const env = {
    CONTAINERS_STORAGE_CONF: storageConf,
    REGISTRY_AUTH_FILE: authFile,
    TMPDIR: tmp,
  };
  const global = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'];
  const withDefaults = (opts: RunOptions = {}): RunOptions => ({ ...opts, env: { ...env, ...opts.env } });
  const buildah: PrivateBuildah = {
    run: (args, opts) => run(bin, [...global, ...args], withDefaults(opts)),
    ok: (args, opts) => runOk(bin, [...global, ...args], withDefaults(opts)),
    policyFlag: `--signature-policy=${policy}`,
    async pullOciLayout(layoutDir, tag) {
      // buildah names an image pulled from oci:DIR after DIR's absolute path, and refuses upper case in names, which
      // mkdtemp's suffixes have: pull from a copy at a lower-case path (a symlink would be resolved back).
      const copy = path.join(os.tmpdir(), `imagegate-buildah-layout-${randomUUID()}`);
      await cp(layoutDir, copy, { recursive: true });
      try {
        return (await buildah.ok(['pull', '-q', buildah.policyFlag, `oci:${copy}:${tag}`])).stdout.trim();
      } finally {
        await rm(copy, { recursive: true, force: true });
      }
    },
    async readImageFile(image, file) {
      const container = (await buildah.ok(['from', '--pull=never', '-q', buildah.policyFlag, image])).stdout.trim();
      try {
        // vfs: the mount point is a plain directory of the storage, no mount(2) involved.
        const mountPoint = (await buildah.ok(['mount', container])).stdout.trim();
        return await readFile(path.join(mountPoint, file), 'utf8');
      } finally {
        await buildah.run(['rm', container]);
      }
    },
  };
  return buildah;
}
