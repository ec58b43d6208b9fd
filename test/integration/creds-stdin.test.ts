/**
 * Registry passwords need not be on a command line (issue 12, item 6; issue 15): `--creds USER` without `:PASSWORD`
 * asks on a terminal without echo, as skopeo does, and reads one line from standard input with `--creds-stdin`, as
 * `docker login --password-stdin` does. Without either, and for an empty password, it fails clearly instead of
 * sending an empty password. Wrong credentials are reported as rejected, once. Against Debian's docker-registry with
 * htpasswd Basic auth behind TLS, and with the Bearer token flow.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegate, layerContentDigests } from '../support/imagegate.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir, testTempDir, type KeyPairFiles } from '../support/tools.js';

const ready = Boolean(requireTool('docker-registry') && requireTool('openssl') && requireTool('htpasswd'));

let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let key: KeyPairFiles;

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-creds-');
  cleanup = dir.cleanup;
  work = dir.path;
  reg = (await startRegistry({ tls: true, htpasswd: true }))!;
  key = await makeKeyPair(path.join(work, 'keys'), 'ec-p256');
  src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(81, 2, 64 * 1024) }] }] });
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  await cleanup?.();
});

/** One word for `sh -c`, which util-linux script runs the command with. */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

describe.skipIf(!ready)('--creds USER --creds-stdin reads the password from standard input', () => {
  const tls = (): string[] => ['--ca-cert', reg.caFile!];

  it('encrypt pushes and inspect reads with the password piped in, never on the command line', async () => {
    const ref = `docker://${reg.host}/stdin/app:1`;
    const push = await imagegate(['encrypt', `oci:${src.dir}:v1`, ref, '-r', `jwe:${key.publicKeyPath}`, '--creds', reg.username!, '--creds-stdin', ...tls(), '-q'], { input: `${reg.password}\n` });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout + push.stderr).not.toContain(reg.password!);
    const inspect = await imagegate(['inspect', ref, '--creds', reg.username!, '--creds-stdin', ...tls()], { input: `${reg.password}\r\n` });
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toContain('encrypted');
  });

  it('--src-creds and --dest-creds each read their own line, in that order', async () => {
    const from = `docker://${reg.host}/stdin/app:1`;
    const to = `docker://${reg.host}/stdin/plain:1`;
    const res = await imagegate(['decrypt', from, to, '--key', key.privateKeyPath, '--src-creds', reg.username!, '--dest-creds', reg.username!, '--creds-stdin', ...tls(), '-q'], {
      input: `${reg.password}\n${reg.password}\n`,
    });
    expect(res.code, res.stderr).toBe(0);
    const copy = await testTempDir('creds-pull-');
    const pull = await imagegate(['decrypt', to, `oci:${copy}:v1`, '--key', key.privateKeyPath, '--creds', `${reg.username}:${reg.password}`, ...tls(), '-q']);
    expect(pull.code, pull.stderr).toBe(0);
    expect(await layerContentDigests(copy, 'v1')).toEqual(src.images[0]!.layers.map((l) => l.diffId));

    // One line for two flags: the second finds standard input at its end.
    const short = await imagegate(['decrypt', from, to, '--key', key.privateKeyPath, '--src-creds', reg.username!, '--dest-creds', reg.username!, '--creds-stdin', ...tls(), '-q'], {
      input: `${reg.password}\n`,
    });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain(`--dest-creds ${reg.username} gives no password, and standard input ended before one was read`);
  });

  it('a wrong password read from stdin is refused by the registry, and no input at all is a usage error', async () => {
    const ref = `docker://${reg.host}/stdin/app:1`;
    const wrong = await imagegate(['inspect', ref, '--creds', reg.username!, '--creds-stdin', ...tls()], { input: 'not-the-password\n' });
    expect(wrong.code).toBe(7);
    expect(wrong.stderr).not.toContain('not-the-password');
    const none = await imagegate(['inspect', ref, '--creds', reg.username!, '--creds-stdin', ...tls()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`imagegate: --creds ${reg.username} gives no password, and standard input ended before one was read; pipe it in as one line`);
  });

  it('without a terminal or --creds-stdin, --creds USER fails before any request, instead of sending an empty password', async () => {
    // Piped input is there, but not asked for: it is not read, and nothing reaches the registry.
    const res = await imagegate(['inspect', `docker://${reg.host}/stdin/app:1`, '--creds', reg.username!, ...tls()], { input: `${reg.password}\n` });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(
      `imagegate: --creds ${reg.username} gives no password, and standard input is not a terminal to ask on; pipe it in with --creds-stdin (printf '%s\\n' "$PASSWORD" | imagegate … --creds ${reg.username} --creds-stdin), or use an auth file (--authfile)`,
    );
    expect(res.stderr).not.toContain('HTTP 401');
  });

  it('an empty password line (an unset variable piped in) is refused, not sent', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/stdin/app:1`, '--creds', reg.username!, '--creds-stdin', ...tls()], { input: '\n' });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(`--creds ${reg.username}: the line read from standard input is empty (is the variable piped in set?); registries refuse an empty password`);
  });

  it('--creds-stdin without a password-less credentials flag is a usage error', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/stdin/app:1`, '--creds', `${reg.username}:${reg.password}`, '--creds-stdin', ...tls()]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('--creds-stdin reads the password of --creds USER, but no credentials flag is missing one');
  });

  it('a wrong password on a push is reported as rejected credentials, once, not once per blob, without "pass --creds"', async () => {
    const wrong = 'not-the-password-15';
    const layers = await buildOciLayout(path.join(work, 'three'), { tag: 'v1', images: [{ layers: [1, 2, 3].map((seed) => ({ files: randomLayerFiles(seed, 1, 4096) })) }] });
    // Three layers and the config go up together: every one is refused, and the cause is said once.
    const res = await imagegate(['encrypt', `oci:${layers.dir}:v1`, `docker://${reg.host}/stdin/wrong:1`, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${wrong}`, ...tls(), '--progress', 'plain', '-j', '3']);
    expect(res.code, res.stderr).toBe(7);
    const refusal = `registry ${reg.host} refused the credentials from --creds (user "${reg.username}") (HTTP 401); check the user and password`;
    const lines = res.stderr.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(`imagegate: ${refusal}`);
    const failed = lines.filter((l) => l.startsWith('failed '));
    expect(failed.length, res.stderr).toBeGreaterThanOrEqual(1);
    expect(failed.filter((l) => l.endsWith(`: ${refusal}`)), res.stderr).toHaveLength(1);
    for (const other of failed.filter((l) => !l.endsWith(`: ${refusal}`))) expect(other).toMatch(/: the same error as above$/);
    expect(res.stderr).not.toContain('pass --creds');
    expect(res.stderr).not.toContain(wrong);
  });

  it.skipIf(!requireTool('script'))('on a terminal it asks, without echoing what is typed (util-linux script provides the terminal)', async () => {
    const command = [process.execPath, CLI, 'inspect', `docker://${reg.host}/stdin/app:1`, '--creds', reg.username!, '--ca-cert', reg.caFile!].map(shellQuote).join(' ');
    // No --creds-stdin: on a terminal the prompt is the way.
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    // Typed only once the prompt is there, as a person would; Enter is a carriage return on a terminal.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        if (output.includes(`Password for ${reg.username} (--creds): `)) resolve();
      });
    });
    child.stdin.write(`${reg.password}\r`);
    const code = await closed;
    child.stdin.destroy();
    expect(code, output).toBe(0);
    expect(output).toContain('encrypted');
    expect(output).not.toContain(reg.password!);
  });

  it('USER:PASSWORD still works as before, and takes nothing from stdin', async () => {
    const res = await imagegate(['inspect', `docker://${reg.host}/stdin/app:1`, '--creds', `${reg.username}:${reg.password}`, ...tls()], { input: 'ignored\n' });
    expect(res.code, res.stderr).toBe(0);
  });
});

describe.skipIf(!ready)('wrong credentials with the Bearer token flow', () => {
  let tokenReg: RegistryServer;

  beforeAll(async () => {
    tokenReg = (await startRegistry({ tls: true, tokenAuth: true }))!;
  }, 120_000);

  afterAll(async () => {
    await tokenReg?.stop();
  });

  it('are reported as refused by the token server, naming their source and user, without the password', async () => {
    const res = await imagegate(['encrypt', `oci:${src.dir}:v1`, `docker://${tokenReg.host}/stdin/app:1`, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${tokenReg.username}:wrong-15`, '--ca-cert', tokenReg.caFile!, '-q']);
    expect(res.code, res.stderr).toBe(7);
    expect(res.stderr).toMatch(new RegExp(`^imagegate: token server https://[^ ]+ for registry ${tokenReg.host.replace(/\./g, '\\.')} refused the credentials from --creds \\(user "${tokenReg.username}"\\) \\(HTTP 401\\); check the user and password\\n$`));
    expect(res.stderr).not.toContain('wrong-15');
  });
});
