/**
 * Never lose a user's data, and never leave ours behind (issue 15): `demo --force` replaces only a demo's own
 * output; a run killed with SIGKILL leaves a staging directory that the next run into the same destination removes;
 * a usage error leaves nothing; a push interrupted with Ctrl-C cancels its upload session and writes no tag.
 * Everything runs the built CLI, against Debian's docker-registry where a registry is needed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { writeBigLayerLayout } from '../support/image-builder.js';
import { CLI, imagegate, imagegateOk } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir, testTempDir, type KeyPairFiles, type TempDir } from '../support/tools.js';

const MiB = 1024 * 1024;
/** Large enough that a copy is still moving it when the test reacts; small enough to write quickly. */
const LAYER_BYTES = 128 * MiB;

let work: TempDir;
let key: KeyPairFiles;
let big: string;

beforeAll(async () => {
  work = await tempDir('data-safety-');
  key = await makeKeyPair(path.join(work.path, 'keys'), 'ec-p256');
  big = path.join(work.path, 'big');
  await writeBigLayerLayout(big, LAYER_BYTES, { compression: 'none', tag: 'v1' });
});
afterAll(async () => work?.cleanup());

/** Starts the CLI and collects its stderr; `exit` resolves with the exit code (null when killed by a signal). */
function startCli(args: readonly string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stderr: () => stderr, exit };
}

/** Polls `check` every 10 ms until it is true, for at most `ms`; returns whether it became true. */
async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
    if (await check()) return true;
  }
  return false;
}

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

describe('imagegate demo DIR --force replaces only what a demo wrote', () => {
  /** A file a user cares about; the test checks it is still there, unchanged. */
  async function userFile(dir: string, name = 'thesis.txt'): Promise<string> {
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, name);
    await writeFile(file, 'years of work\n');
    return file;
  }

  it('refuses a parent of the working directory (demo .. --force from a subdirectory) and deletes nothing', async () => {
    const parent = await testTempDir('demo-parent-');
    const precious = await userFile(parent);
    const sub = path.join(parent, 'sub');
    await mkdir(sub);
    const r = await imagegate(['demo', '..', '--force'], { cwd: sub });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('.. is a parent of the working directory');
    expect(await readFile(precious, 'utf8')).toBe('years of work\n');
    expect(await entries(parent)).toEqual(['sub', 'thesis.txt']);
  });

  it('refuses the working directory (demo . --force) and the home directory', async () => {
    const here = await testTempDir('demo-here-');
    const precious = await userFile(here);
    const dot = await imagegate(['demo', '.', '--force'], { cwd: here });
    expect(dot.code, dot.stderr).toBe(2);
    expect(dot.stderr).toContain('. is the working directory');

    const home = await testTempDir('demo-home-');
    const homeFile = await userFile(home, '.bashrc');
    const elsewhere = await testTempDir('demo-cwd-');
    const r = await imagegate(['demo', home, '--force'], { cwd: elsewhere, env: { HOME: home } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${home} is your home directory`);
    expect(await readFile(precious, 'utf8')).toBe('years of work\n');
    expect(await readFile(homeFile, 'utf8')).toBe('years of work\n');
    expect(await entries(elsewhere)).toEqual([]);
  });

  it("refuses a directory a demo did not write, and a demo's directory that also holds a user's file", async () => {
    const base = await testTempDir('demo-mixed-');
    const notDemo = path.join(base, 'mine');
    const precious = await userFile(notDemo);
    const r = await imagegate(['demo', notDemo, '--force']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('was not written by imagegate demo');
    expect(await entries(notDemo)).toEqual(['thesis.txt']);

    const demo = path.join(base, 'demo');
    await imagegateOk(['demo', demo]);
    const notes = await userFile(demo, 'notes.txt');
    const again = await imagegate(['demo', demo, '--force']);
    expect(again.code, again.stderr).toBe(2);
    expect(again.stderr).toContain('holds files the demo did not write (notes.txt)');
    expect(await readFile(notes, 'utf8')).toBe('years of work\n');
    expect(await readFile(precious, 'utf8')).toBe('years of work\n');
    expect(await entries(demo)).toContain('encrypted');
  });

  it('replaces its own output when run again with --force', async () => {
    const demo = path.join(await testTempDir('demo-again-'), 'demo');
    await imagegateOk(['demo', demo]);
    const firstKey = await readFile(path.join(demo, 'alice.pem'), 'utf8');
    const r = await imagegateOk(['demo', demo, '--force']);
    expect(r.stderr).toContain('OK: every decrypted layer is byte-identical to the original');
    expect(await readFile(path.join(demo, 'alice.pem'), 'utf8')).not.toBe(firstKey);
    expect(await entries(demo)).toEqual(['.imagegate-demo', 'alice.pem', 'alice.pub.pem', 'bob.pem', 'bob.pub.pem', 'decrypted', 'encrypted', 'sample']);
  });
});

describe('staging directories', () => {
  const staging = async (dir: string, name: string): Promise<string[]> => (await entries(dir)).filter((e) => e.startsWith(`.${name}.imagegate-`));

  it('a run killed with SIGKILL leaves its staging directory; the next run into the same destination removes it and says so', async () => {
    const out = await testTempDir('killed-');
    const args = ['encrypt', `oci:${big}:v1`, `oci:${out}/enc:v1`, '-r', `jwe:${key.publicKeyPath}`];
    const cli = startCli(args);
    // Kill once part of the encrypted layer is on disk.
    const blobBytes = async (): Promise<number> => {
      let total = 0;
      for (const dir of await staging(out, 'enc')) {
        const blobs = path.join(out, dir, 'blobs', 'sha256');
        for (const f of await entries(blobs)) total += await stat(path.join(blobs, f)).then((s) => s.size, () => 0);
      }
      return total;
    };
    const midway = await waitFor(async () => (await blobBytes()) > MiB, 60_000);
    cli.child.kill('SIGKILL');
    await cli.exit;
    expect(midway, `the copy never started writing:\n${cli.stderr()}`).toBe(true);
    const left = await staging(out, 'enc');
    expect(left).toHaveLength(1);
    expect(await entries(out)).toEqual(left);

    const second = await imagegateOk(args);
    expect(second.stderr).toContain(`removed ${path.join(out, left[0]!)}`);
    expect(second.stderr).toContain(`process ${cli.child.pid} that was writing it no longer runs`);
    expect(await entries(out)).toEqual(['enc']);
    // The owner record of the staging directory does not end up in the layout.
    expect(await entries(path.join(out, 'enc'))).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('a usage error (encrypt without -r, decrypt without --key) leaves no staging directory', async () => {
    const out = await testTempDir('usage-');
    const enc = await imagegate(['encrypt', `oci:${big}:v1`, `oci:${out}/enc:v1`]);
    expect(enc.code, enc.stderr).toBe(2);
    expect(enc.stderr).toContain('encrypt needs at least one recipient');
    const archive = await imagegate(['encrypt', `oci:${big}:v1`, `oci-archive:${out}/enc.tar`]);
    expect(archive.code, archive.stderr).toBe(2);
    const dec = await imagegate(['decrypt', `oci:${big}:v1`, `oci:${out}/dec:v1`]);
    expect(dec.code, dec.stderr).toBe(2);
    expect(dec.stderr).toContain('decrypt needs at least one private key');
    expect(await entries(out)).toEqual([]);
  });
});

describe.skipIf(!requireTool('docker-registry'))('Ctrl-C during a push to a registry', () => {
  let reg: RegistryServer;
  let proxy: CountingProxy;
  beforeAll(async () => {
    reg = (await startRegistry())!;
    proxy = await startCountingProxy(reg.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
  });

  it('cancels the upload session in progress, writes no tag, and says what the registry keeps', async () => {
    const repo = 'team/interrupted';
    const uploads = path.join(reg.dataDir, 'docker/registry/v2/repositories', repo, '_uploads');
    const uploadedBytes = async (): Promise<number> => {
      let total = 0;
      for (const id of await entries(uploads)) total += await stat(path.join(uploads, id, 'data')).then((s) => s.size, () => 0);
      return total;
    };
    const cli = startCli(['encrypt', `oci:${big}:v1`, `docker://${proxy.host}/${repo}:1`, '-r', `jwe:${key.publicKeyPath}`, '--insecure', '-j', '1']);
    // Interrupt once the registry holds part of the layer: an upload session with data in it.
    const midUpload = await waitFor(async () => (await uploadedBytes()) > MiB, 60_000);
    cli.child.kill('SIGINT');
    const code = await cli.exit;
    expect(midUpload, `the push never reached the registry:\n${cli.stderr()}`).toBe(true);
    expect(code, cli.stderr()).toBe(130);

    // The session was cancelled with DELETE on its location, and the registry dropped its data.
    const patched = proxy.requests.filter((r) => r.startsWith(`PATCH /v2/${repo}/blobs/uploads/`)).map((r) => r.slice('PATCH '.length));
    expect(patched.length).toBeGreaterThan(0);
    expect(proxy.requests.some((r) => r.startsWith(`DELETE /v2/${repo}/blobs/uploads/`)), proxy.requests.join('\n')).toBe(true);
    expect(await uploadedBytes()).toBe(0);
    for (const location of patched) {
      // A session that still existed would answer 204, or (to a stale location) 400 BLOB_UPLOAD_INVALID.
      const res = await request(`${reg.url}${location}`);
      const body = (await res.body.json()) as { errors: Array<{ code: string }> };
      expect([res.statusCode, body.errors[0]?.code]).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
    }

    // No tag and no manifest.
    const tags = await request(`${reg.url}/v2/${repo}/tags/list`);
    const tagList = tags.statusCode === 200 ? ((await tags.body.json()) as { tags: string[] | null }).tags ?? [] : (await tags.body.dump(), []);
    expect(tagList).toEqual([]);
    expect(proxy.requests.filter((r) => r.startsWith(`PUT /v2/${repo}/manifests/`))).toEqual([]);

    // The message says what stays: no tag, and blobs already uploaded stay until garbage collection.
    expect(cli.stderr()).toContain('interrupted by SIGINT');
    expect(cli.stderr()).not.toContain('nothing was written');
    expect(cli.stderr()).toMatch(/no tag or manifest was written/);
    expect(cli.stderr()).toMatch(/garbage collection/);
  });
});
