/**
 * scripts/build-image.sh: imagegate's runtime image built without a container engine (Node 24 from npm, libraries and
 * CAs from this Debian machine, umoci), run the way a runtime runs it: its rootfs as root directory, as user 65532,
 * with the entrypoint the webhook injects.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_COMMAND } from '../../src/pod-model/injected-containers.js';
import { requireTool, run, runOk, tempDir, type TempDir } from '../support/tools.js';

const repo = path.resolve(import.meta.dirname, '../..');
const umoci = requireTool('umoci');
const chroot = requireTool('chroot');
const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI === 'true') throw new Error('container-image.test.ts runs the image with chroot, which needs root (CI runs as root)');

describe.skipIf(!umoci || !chroot || !isRoot)('imagegate runtime image (scripts/build-image.sh)', () => {
  let work: TempDir;
  let rootfs: string;
  let config: { config: { User: string; Entrypoint: string[]; WorkingDir: string; Env: string[] } };

  beforeAll(async () => {
    work = await tempDir('imagegate-image-');
    const layout = path.join(work.path, 'layout');
    const built = await runOk(path.join(repo, 'scripts/build-image.sh'), [layout, 'test']);
    expect(built.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    await runOk(umoci!, ['unpack', '--image', `${layout}:test`, path.join(work.path, 'bundle')]);
    rootfs = path.join(work.path, 'bundle', 'rootfs');
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const blob = (d: string): string => path.join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
    const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { config: { digest: string } };
    config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as typeof config;
  }, 300_000);
  afterAll(async () => work?.cleanup());

  it('runs as 65532 with the entrypoint the webhook injects, and nothing but what it needs', async () => {
    expect(config.config.User).toBe('65532:65532');
    expect(config.config.Entrypoint).toEqual(CHECK_COMMAND);
    const version = await run(chroot!, ['--userspec=65532:65532', rootfs, ...CHECK_COMMAND, '--version']);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(await readFile(path.join(repo, 'package.json'), 'utf8')).version);
    // No shell, no dev dependencies.
    expect((await run(chroot!, [rootfs, '/bin/sh', '-c', 'true'])).code).not.toBe(0);
    const packages = (await run('ls', [path.join(rootfs, 'opt/imagegate/node_modules')])).stdout;
    expect(packages).toContain('undici');
    expect(packages).not.toContain('vitest');
    expect(packages).not.toContain('typescript');
    // The gRPC key provider loads ocicrypt's contract from beside its compiled module (npm run build copies it).
    expect((await run('ls', [path.join(rootfs, 'opt/imagegate/dist/src/keyprovider')])).stdout).toContain('keyprovider.proto');
  });
});
