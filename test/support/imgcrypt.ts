/**
 * imgcrypt v1.1.8's commands (github.com/containerd/imgcrypt, ocicrypt 1.1.8): `ctr-enc`, containerd's ctr with
 * `images encrypt` / `images decrypt`, and `ctd-decoder`, containerd's stream processor. test/infra/build-kubernetes.sh
 * builds them beside the Kubernetes commands into one cached bin directory, which `--path` prints (a directory, not a
 * binary, so `findBuiltTool` does not fit).
 *
 * As with the other built tools, a local run never builds them: without the cache the suites skip, with a hint on
 * stderr. Under CI=true a missing binary is built here (.ci/run has normally built it already: the script builds
 * everything it lacks, the Kubernetes commands too) and a failed build throws.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath } from './tools.js';

const BUILD_SH = fileURLToPath(new URL('../infra/build-kubernetes.sh', import.meta.url));

export type ImgcryptCommand = 'ctr-enc' | 'ctd-decoder';

const found = new Map<ImgcryptCommand, string | undefined>();

function cached(name: ImgcryptCommand): string | undefined {
  const bin = execFileSync(BUILD_SH, ['--path'], { encoding: 'utf8' }).trim();
  return findOnPath(path.join(bin, name));
}

/** The absolute path of `name`, or undefined locally when it is not built yet (after a hint on stderr). */
export function findImgcryptTool(name: ImgcryptCommand): string | undefined {
  if (found.has(name)) return found.get(name);
  let file = cached(name);
  if (file === undefined && process.env.CI !== 'true') {
    process.stderr.write(`imgcrypt's ${name}: not built, skipping its tests; build it with ${BUILD_SH}\n`);
  } else if (file === undefined) {
    // Progress goes straight to our stderr: a cold build takes minutes.
    const build = spawnSync(BUILD_SH, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    file = build.status === 0 ? cached(name) : undefined;
    if (file === undefined) {
      const how = build.error?.message ?? (build.signal ? `killed by ${build.signal}` : `exit ${build.status}`);
      throw new Error(`imgcrypt's ${name} is required for the integration tests under CI=true, but ${BUILD_SH} failed (${how})`);
    }
  }
  found.set(name, file);
  return file;
}
