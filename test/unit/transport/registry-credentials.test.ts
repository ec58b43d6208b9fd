import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ImagegateError } from '../../../src/errors.js';
import { findCredentials, parseCredentialsFlag, type CredentialSearch } from '../../../src/transport/registry/credentials.js';
import { failure } from './tar-fixtures.js';

const made: string[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * A fake home with nothing in it, an empty bin dir on PATH, and an env that names only what a test sets, so the
 * developer's own auth files and helpers are never seen.
 */
async function sandbox(env: NodeJS.ProcessEnv = {}): Promise<{ root: string; home: string; bin: string; search: CredentialSearch }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'imagegate-creds-'));
  made.push(root);
  const home = path.join(root, 'home');
  const bin = path.join(root, 'bin');
  await mkdir(home);
  await mkdir(bin);
  return { root, home, bin, search: { homeDir: home, env: { PATH: bin, ...env } } };
}

async function writeJson(file: string, value: unknown): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const dockerConfig = (home: string) => path.join(home, '.docker', 'config.json');

/**
 * Writes `docker-credential-NAME` into `bin`: a shell script (builtins only, so PATH may hold just `bin`) that
 * appends the server URL it was asked for to NAME.log, then runs `body`.
 */
async function fakeHelper(bin: string, name: string, body: string): Promise<{ asked: () => Promise<string[]> }> {
  const log = path.join(bin, `${name}.log`);
  const file = path.join(bin, `docker-credential-${name}`);
  await writeFile(file, `#!/bin/sh\n[ "$1" = get ] || exit 3\nIFS= read -r url || true\nprintf '%s\\n' "$url" >> '${log}'\n${body}\n`);
  await chmod(file, 0o755);
  return {
    asked: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
  };
}

const answers = (username: string, secret: string) => `printf '%s' '{"ServerURL":"x","Username":"${username}","Secret":"${secret}"}'`;
const notFound = `echo "credentials not found in native keychain"; exit 1`;

describe('auths entries', () => {
  it('decodes base64 user:password, splitting on the first colon and dropping trailing NULs', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), {
      auths: {
        'registry.example:5000': { auth: b64('alice:pa:ss:word') },
        'nul.example': { auth: b64('bob:secret\0\0') },
        'plain.example': { username: 'carol', password: 'pw' },
      },
    });
    expect(await findCredentials('registry.example:5000', 'team/app', search)).toEqual({
      username: 'alice',
      password: 'pa:ss:word',
      source: path.join('~', '.docker', 'config.json'),
    });
    expect(await findCredentials('nul.example', 'app', search)).toMatchObject({ username: 'bob', password: 'secret' });
    expect(await findCredentials('plain.example', 'app', search)).toMatchObject({ username: 'carol', password: 'pw' });
    expect(await findCredentials('other.example', 'app', search)).toBeUndefined();
    // A port is part of the host: credentials for the host without it do not apply.
    expect(await findCredentials('registry.example', 'team/app', search)).toBeUndefined();
  });

  it('returns identity and registry tokens', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), {
      auths: {
        'oauth.example': { auth: b64('user:'), identitytoken: 'refresh-token' },
        'bearer.example': { registrytoken: 'bearer-token' },
      },
    });
    expect(await findCredentials('oauth.example', 'app', search)).toEqual({
      username: 'user',
      password: '',
      identityToken: 'refresh-token',
      source: path.join('~', '.docker', 'config.json'),
    });
    expect(await findCredentials('bearer.example', 'app', search)).toEqual({
      registryToken: 'bearer-token',
      source: path.join('~', '.docker', 'config.json'),
    });
  });

  it('reports an empty username or a damaged auth value as an AUTH error naming the file and key', async () => {
    const { home, search } = await sandbox();
    const file = await writeJson(dockerConfig(home), {
      auths: { 'empty.example': { auth: b64(':hunter2') }, 'junk.example': { auth: 'not base64!' }, 'nocolon.example': { auth: b64('hunter2') } },
    });
    const empty = await failure(findCredentials('empty.example', 'app', search));
    expect(empty.code).toBe('AUTH');
    expect(empty.message).toContain('.docker');
    expect(empty.message).toContain('empty.example');
    expect(empty.message).not.toContain('hunter2');
    expect((await failure(findCredentials('junk.example', 'app', search))).code).toBe('AUTH');
    const noColon = await failure(findCredentials('nocolon.example', 'app', search));
    expect(noColon.code).toBe('AUTH');
    expect(noColon.message).not.toContain('hunter2');
    // Outside the home directory the file is named by its full path.
    const explicit = await failure(findCredentials('empty.example', 'app', { ...search, authFile: file, homeDir: '/nonexistent-home' }));
    expect(explicit.message).toContain(file);
  });

  it('skips the empty entries docker leaves in auths when a credential store holds the secret', async () => {
    const { home, search } = await sandbox({ REGISTRY_AUTH_FILE: '' });
    await writeJson(path.join(home, '.config', 'containers', 'auth.json'), { auths: { 'quay.io': {} } });
    await writeJson(dockerConfig(home), { auths: { 'quay.io': { auth: b64('u:p') } } });
    expect(await findCredentials('quay.io', 'app', search)).toMatchObject({ username: 'u', source: path.join('~', '.docker', 'config.json') });
  });
});

describe('key matching', () => {
  it('uses the most specific namespace key that contains the repository', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), {
      auths: {
        'reg.example': { auth: b64('host:p') },
        'reg.example/team': { auth: b64('team:p') },
        'reg.example/team/app': { auth: b64('app:p') },
        'reg.example/other': { auth: b64('other:p') },
      },
    });
    const user = async (repo: string) => (await findCredentials('reg.example', repo, search))?.username;
    expect(await user('team/app')).toBe('app');
    expect(await user('team/app/sub')).toBe('app');
    expect(await user('team/api')).toBe('team');
    expect(await user('team')).toBe('team');
    // Prefixes count on path-component boundaries only.
    expect(await user('teammate/app')).toBe('host');
    expect(await user('lib/x')).toBe('host');
  });

  it('does not let a namespace key stand in for the whole registry', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), { auths: { 'reg.example/other': { auth: b64('other:p') } } });
    expect(await findCredentials('reg.example', 'team/app', search)).toBeUndefined();
  });

  it('matches URL-style keys by their host', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), {
      auths: { 'https://reg.example:5000/v2/': { auth: b64('url:p') }, 'http://insecure.example': { auth: b64('http:p') } },
    });
    expect(await findCredentials('reg.example:5000', 'app', search)).toMatchObject({ username: 'url' });
    expect(await findCredentials('insecure.example', 'app', search)).toMatchObject({ username: 'http' });
  });

  it('treats every Docker Hub alias as docker.io', async () => {
    for (const key of ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io']) {
      const { home, search } = await sandbox();
      await writeJson(dockerConfig(home), { auths: { [key]: { auth: b64('hub:p') }, 'quay.io': { auth: b64('quay:p') } } });
      expect(await findCredentials('docker.io', 'library/busybox', search), key).toMatchObject({ username: 'hub' });
      expect(await findCredentials('index.docker.io', 'library/busybox', search), key).toMatchObject({ username: 'hub' });
    }
  });

  it('prefers a key written as the host over one that only normalises to it', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), {
      auths: { 'https://index.docker.io/v1/': { auth: b64('legacy:p') }, 'docker.io': { auth: b64('exact:p') }, 'docker.io/team': { auth: b64('team:p') } },
    });
    expect(await findCredentials('docker.io', 'library/busybox', search)).toMatchObject({ username: 'exact' });
    expect(await findCredentials('docker.io', 'team/app', search)).toMatchObject({ username: 'team' });
  });
});

describe('credential helpers', () => {
  it('prefers credHelpers over credsStore over auths, and passes the bare host', async () => {
    const { home, bin, search } = await sandbox();
    const special = await fakeHelper(bin, 'special', answers('helper-user', 'helper-secret'));
    const store = await fakeHelper(bin, 'store', answers('store-user', 'store-secret'));
    await writeJson(dockerConfig(home), {
      credHelpers: { 'reg.example:5000': 'special' },
      credsStore: 'store',
      auths: { 'reg.example:5000': { auth: b64('file:p') }, 'other.example': { auth: b64('file:p') } },
    });
    expect(await findCredentials('reg.example:5000', 'app', search)).toEqual({ username: 'helper-user', password: 'helper-secret', source: 'docker-credential-special' });
    expect(await findCredentials('other.example', 'app', search)).toEqual({ username: 'store-user', password: 'store-secret', source: 'docker-credential-store' });
    expect(await special.asked()).toEqual(['reg.example:5000']);
    expect(await store.asked()).toEqual(['other.example']);

    await writeJson(dockerConfig(home), { credHelpers: { 'reg.example:5000': 'special' }, auths: { 'other.example': { auth: b64('file:p') } } });
    expect(await findCredentials('other.example', 'app', search)).toMatchObject({ username: 'file' });
  });

  it('reads an identity token from a helper that answers with the <token> user', async () => {
    const { home, bin, search } = await sandbox();
    await fakeHelper(bin, 'tok', answers('<token>', 'refresh'));
    await writeJson(dockerConfig(home), { credsStore: 'tok' });
    expect(await findCredentials('reg.example', 'app', search)).toEqual({ identityToken: 'refresh', source: 'docker-credential-tok' });
  });

  it('asks helpers for Docker Hub by its v1 URL, whichever alias names it in credHelpers', async () => {
    const { home, bin, search } = await sandbox();
    const hub = await fakeHelper(bin, 'hub', answers('hub-user', 's'));
    await writeJson(dockerConfig(home), { credHelpers: { 'https://index.docker.io/v1/': 'hub' } });
    expect(await findCredentials('docker.io', 'library/busybox', search)).toMatchObject({ username: 'hub-user' });
    await writeJson(dockerConfig(home), { credHelpers: { 'docker.io': 'hub' } });
    expect(await findCredentials('registry-1.docker.io', 'library/busybox', search)).toMatchObject({ username: 'hub-user' });
    expect(await hub.asked()).toEqual(['https://index.docker.io/v1/', 'https://index.docker.io/v1/']);
  });

  it('falls through a helper that has no credentials to the same file, then to the next file', async () => {
    const { root, home, bin, search } = await sandbox();
    const store = await fakeHelper(bin, 'store', notFound);
    const first = await writeJson(path.join(root, 'first.json'), { credsStore: 'store', auths: { 'a.example': { auth: b64('same-file:p') } } });
    await writeJson(dockerConfig(home), { auths: { 'b.example': { auth: b64('next-file:p') } } });
    const env = { ...search.env, REGISTRY_AUTH_FILE: first };
    expect(await findCredentials('a.example', 'app', { ...search, env })).toMatchObject({ username: 'same-file', source: first });
    expect(await findCredentials('b.example', 'app', { ...search, env })).toMatchObject({ username: 'next-file' });
    expect(await findCredentials('c.example', 'app', { ...search, env })).toBeUndefined();
    expect(await store.asked()).toEqual(['a.example', 'b.example', 'c.example']);
  });

  it('treats an empty answer as no credentials', async () => {
    const { home, bin, search } = await sandbox();
    await fakeHelper(bin, 'empty', answers('', ''));
    await writeJson(dockerConfig(home), { credsStore: 'empty', auths: { 'a.example': { auth: b64('file:p') } } });
    expect(await findCredentials('a.example', 'app', search)).toMatchObject({ username: 'file' });
  });

  it('reports a failing helper as an AUTH error naming helper and host, never the secret', async () => {
    const { home, bin, search } = await sandbox();
    await fakeHelper(bin, 'broken', `echo "gpg: decryption failed: No secret key" >&2; exit 1`);
    await fakeHelper(bin, 'garbled', `printf '%s' '{"Username":"u","Secret":"s3cr3t-value"'`);
    await fakeHelper(bin, 'typed', `printf '%s' '{"Username":"u","Secret":42,"Note":"s3cr3t-value"}'`);
    await writeJson(dockerConfig(home), { credHelpers: { 'broken.example': 'broken', 'garbled.example': 'garbled', 'typed.example': 'typed', 'missing.example': 'absent' } });

    const broken = await failure(findCredentials('broken.example', 'app', search));
    expect(broken.code).toBe('AUTH');
    expect(broken.message).toContain('docker-credential-broken');
    expect(broken.message).toContain('broken.example');
    expect(broken.message).toContain('decryption failed');
    expect(broken.message).toContain('docker login');

    for (const host of ['garbled.example', 'typed.example']) {
      const e = await failure(findCredentials(host, 'app', search));
      expect(e.code).toBe('AUTH');
      expect(e.message).toContain(host);
      expect(e.message).toContain(`docker-credential-${host.split('.')[0]}`);
      expect(e.message).not.toContain('s3cr3t');
    }

    const missing = await failure(findCredentials('missing.example', 'app', search));
    expect(missing.code).toBe('AUTH');
    expect(missing.message).toContain('docker-credential-absent');
    expect(missing.message).toContain('missing.example');
    expect(missing.message).toMatch(/install/i);
  });

  it('refuses a helper name that is a path', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), { credsStore: '../../bin/sh' });
    expect((await failure(findCredentials('a.example', 'app', search))).code).toBe('AUTH');
  });
});

describe('file search', () => {
  it('searches REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, then DOCKER_CONFIG, first answer winning', async () => {
    const { root, search } = await sandbox();
    const files = {
      REGISTRY_AUTH_FILE: path.join(root, 'override.json'),
      XDG_RUNTIME_DIR: path.join(root, 'run', 'containers', 'auth.json'),
      XDG_CONFIG_HOME: path.join(root, 'xdg', 'containers', 'auth.json'),
      DOCKER_CONFIG: path.join(root, 'dockercfg', 'config.json'),
    };
    const env = {
      ...search.env,
      REGISTRY_AUTH_FILE: files.REGISTRY_AUTH_FILE,
      XDG_RUNTIME_DIR: path.join(root, 'run'),
      XDG_CONFIG_HOME: path.join(root, 'xdg'),
      DOCKER_CONFIG: path.join(root, 'dockercfg'),
    };
    // Each file knows the shared host (so order decides) and a host of its own (so later files are reached).
    for (const [name, file] of Object.entries(files)) {
      await writeJson(file, { auths: { 'shared.example': { auth: b64(`${name}:p`) }, [`${name.toLowerCase().replaceAll('_', '-')}.example`]: { auth: b64(`${name}:p`) } } });
    }
    const user = async (host: string) => (await findCredentials(host, 'app', { ...search, env }))?.username;
    expect(await user('shared.example')).toBe('REGISTRY_AUTH_FILE');
    expect(await user('xdg-runtime-dir.example')).toBe('XDG_RUNTIME_DIR');
    expect(await user('xdg-config-home.example')).toBe('XDG_CONFIG_HOME');
    expect(await user('docker-config.example')).toBe('DOCKER_CONFIG');

    await rm(files.REGISTRY_AUTH_FILE);
    expect(await user('shared.example')).toBe('XDG_RUNTIME_DIR');
    await rm(files.XDG_RUNTIME_DIR);
    expect(await user('shared.example')).toBe('XDG_CONFIG_HOME');
    await rm(files.XDG_CONFIG_HOME);
    expect(await findCredentials('shared.example', 'app', { ...search, env })).toMatchObject({ username: 'DOCKER_CONFIG', source: files.DOCKER_CONFIG });
  });

  it('defaults to ~/.config/containers/auth.json before ~/.docker/config.json', async () => {
    const { home, search } = await sandbox();
    await writeJson(path.join(home, '.config', 'containers', 'auth.json'), { auths: { 'a.example': { auth: b64('podman:p') } } });
    await writeJson(dockerConfig(home), { auths: { 'a.example': { auth: b64('docker:p') }, 'b.example': { auth: b64('docker:p') } } });
    expect(await findCredentials('a.example', 'app', search)).toMatchObject({
      username: 'podman',
      source: path.join('~', '.config', 'containers', 'auth.json'),
    });
    expect(await findCredentials('b.example', 'app', search)).toMatchObject({ username: 'docker' });
  });

  it('reads only the explicit auth file, which must exist', async () => {
    const { root, home, search } = await sandbox();
    await writeJson(dockerConfig(home), { auths: { 'a.example': { auth: b64('docker:p') }, 'b.example': { auth: b64('docker:p') } } });
    const authFile = await writeJson(path.join(root, 'explicit.json'), { auths: { 'a.example': { auth: b64('explicit:p') } } });
    expect(await findCredentials('a.example', 'app', { ...search, authFile })).toMatchObject({ username: 'explicit', source: authFile });
    expect(await findCredentials('b.example', 'app', { ...search, authFile })).toBeUndefined();

    const missing = path.join(root, 'nope.json');
    const e = await failure(findCredentials('a.example', 'app', { ...search, authFile: missing }));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain(missing);
  });

  it('reports a file that is not valid JSON as an AUTH error naming it, without quoting it', async () => {
    const { root, home, search } = await sandbox();
    const bad = await writeJson(path.join(root, 'bad.json'), '{"auths": {"a.example": {"auth": "c2VjcmV0"}} oops-hunter2');
    await writeJson(dockerConfig(home), { auths: { 'a.example': { auth: b64('docker:p') } } });
    const e = await failure(findCredentials('a.example', 'app', { ...search, env: { ...search.env, REGISTRY_AUTH_FILE: bad } }));
    expect(e.code).toBe('AUTH');
    expect(e.message).toContain(bad);
    expect(e.message).not.toContain('hunter2');
    expect(e.message).not.toContain('c2VjcmV0');

    await writeJson(dockerConfig(home), '[1, 2]');
    const notObject = await failure(findCredentials('a.example', 'app', search));
    expect(notObject.code).toBe('AUTH');
    expect(notObject.message).toContain(path.join('~', '.docker', 'config.json'));
  });

  it('refuses a file over 1 MiB', async () => {
    const { home, search } = await sandbox();
    await writeJson(dockerConfig(home), `{"auths": {}, "pad": "${'x'.repeat(1024 * 1024)}"}`);
    expect((await failure(findCredentials('a.example', 'app', search))).code).toBe('AUTH');
  });

  it('finds nothing when there are no files', async () => {
    const { search } = await sandbox();
    expect(await findCredentials('docker.io', 'library/busybox', search)).toBeUndefined();
  });
});

describe('parseCredentialsFlag', () => {
  it('splits USER[:PASSWORD] on the first colon', () => {
    expect(parseCredentialsFlag('alice:pa:ss')).toEqual({ username: 'alice', password: 'pa:ss', source: '--creds' });
    expect(parseCredentialsFlag('alice:')).toEqual({ username: 'alice', password: '', source: '--creds' });
    expect(parseCredentialsFlag('alice')).toEqual({ username: 'alice', password: '', source: '--creds' });
  });

  it('rejects an empty username without quoting the password', () => {
    for (const text of ['', ':hunter2']) {
      let caught: unknown;
      try {
        parseCredentialsFlag(text);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ImagegateError);
      expect((caught as ImagegateError).code).toBe('USAGE');
      expect((caught as ImagegateError).message).not.toContain('hunter2');
    }
  });
});
