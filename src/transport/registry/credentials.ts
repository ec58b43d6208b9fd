import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../../errors.js';

/**
 * Registry credentials found the way skopeo/podman and docker find them: containers auth.json files and the
 * docker config file, each of which may hand the lookup to a `docker-credential-*` helper program.
 * Nothing here logs, and no message ever contains a password or token.
 */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token, exchanged at the registry's token endpoint for bearer tokens. */
  identityToken?: string;
  /** A bearer token to send as is. */
  registryToken?: string;
  /** Where they came from, for messages: e.g. "~/.docker/config.json" or "docker-credential-pass". */
  source: string;
}

/** Where to look. Tests pass `env` and `homeDir` so that the developer's own files are never read. */
export interface CredentialSearch {
  /** An explicit auth file (`--authfile`): only this file is read, and it must exist. */
  authFile?: string;
  /** Environment for the file search and for credential helpers (including their PATH); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default os.homedir(). */
  homeDir?: string;
}

/** Auth files are a few KiB; anything this big is not one, and we will not read it all into memory. */
const MAX_AUTH_FILE_BYTES = 1024 * 1024;
/** A helper that asks for a GPG passphrase may take a while, but one that hangs must not hang us. */
const HELPER_TIMEOUT_MS = 30_000;
/** Helper replies are one small JSON object; cap what we buffer from a misbehaving one. */
const MAX_HELPER_OUTPUT_BYTES = 64 * 1024;

/** The names Docker Hub goes by in auth files; all of them mean the same registry. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
/** Docker stores, and asks helpers for, Docker Hub credentials under its old v1 API URL. */
const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';

/**
 * Credentials for `host` (e.g. "registry.example:5000" or "docker.io") and `repository` (e.g. "team/app"), or
 * undefined when no file or helper has any: anonymous access is then the caller's choice.
 *
 * With `authFile`, only that file is read. Otherwise the first of these that yields credentials wins:
 * `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
 * (default `~/.config/containers/auth.json`), `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
 * Missing files are skipped; unreadable or malformed ones are AUTH errors naming the file.
 */
export async function findCredentials(host: string, repository: string, search: CredentialSearch = {}): Promise<RegistryCredentials | undefined> {
  const env = search.env ?? process.env;
  const homeDir = search.homeDir ?? os.homedir();
  const target: Target = { host, hostKey: canonicalHost(host), repository: repository.replace(/^\/+|\/+$/g, '') };

  if (search.authFile !== undefined) {
    const config = await readAuthFile(search.authFile, homeDir);
    if (config === undefined) throw new ImagegateError('USAGE', `auth file ${search.authFile} does not exist`);
    return credentialsFromFile(config, target, env);
  }
  for (const file of authFileSearchPath(env, homeDir)) {
    const config = await readAuthFile(file, homeDir);
    if (config === undefined) continue;
    const found = await credentialsFromFile(config, target, env);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * `--creds USER[:PASSWORD]`. The password may itself contain ':' (only the first one splits). Without one the
 * password is empty; prompting for it is the CLI's business.
 */
export function parseCredentialsFlag(text: string): RegistryCredentials {
  const colon = text.indexOf(':');
  const username = colon < 0 ? text : text.slice(0, colon);
  const password = colon < 0 ? '' : text.slice(colon + 1);
  // The text may hold a password, so the message must not quote it.
  if (username === '') throw new ImagegateError('USAGE', '--creds needs a username: give --creds USER[:PASSWORD]');
  return { username, password, source: '--creds' };
}

/**
 * Credentials for `host`/`repository` from an `auths` object as it appears in a docker config.json (and in a
 * Kubernetes `kubernetes.io/dockerconfigjson` pull secret); no helpers are run. `source` names it in messages.
 */
export function credentialsFromAuths(auths: unknown, host: string, repository: string, source: string): RegistryCredentials | undefined {
  if (!isObject(auths)) return undefined;
  const target: Target = { host, hostKey: canonicalHost(host), repository: repository.replace(/^\/+|\/+$/g, '') };
  for (const key of matchingAuthKeys(auths, target)) {
    const found = decodeEntry(auths[key], key, source);
    if (found !== undefined) return found;
  }
  return undefined;
}

interface Target {
  /** As the caller gave it: what we name in messages and ask helpers for. */
  host: string;
  /** Lowercased, and "docker.io" for every Docker Hub alias: what auth file keys are compared with. */
  hostKey: string;
  repository: string;
}

interface AuthFile {
  /** The file's path, with the home directory shown as ~, for messages and `source`. */
  display: string;
  auths: Record<string, unknown>;
  credsStore?: string;
  credHelpers: Record<string, unknown>;
}

function canonicalHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? 'docker.io' : lower;
}

function authFileSearchPath(env: NodeJS.ProcessEnv, homeDir: string): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(path.join(env.XDG_CONFIG_HOME || path.join(homeDir, '.config'), 'containers', 'auth.json'));
  files.push(path.join(env.DOCKER_CONFIG || path.join(homeDir, '.docker'), 'config.json'));
  // REGISTRY_AUTH_FILE often names one of the default files; reading it twice would run its helper twice.
  return [...new Map(files.map((f) => [path.resolve(f), f])).values()];
}

function displayPath(file: string, homeDir: string): string {
  const home = path.resolve(homeDir);
  const resolved = path.resolve(file);
  return resolved.startsWith(home + path.sep) ? `~${path.sep}${resolved.slice(home.length + 1)}` : file;
}

/** The parsed file, or undefined when it does not exist. */
async function readAuthFile(file: string, homeDir: string): Promise<AuthFile | undefined> {
  const display = displayPath(file, homeDir);
  const bytes = await readCapped(file, display);
  if (bytes === undefined) return undefined;
  const text = bytes.toString('utf8');
  // `touch auth.json` leaves an empty file; treat it as one with no credentials rather than as broken.
  if (text.trim() === '') return { display, auths: {}, credHelpers: {} };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // JSON.parse messages quote the text around the error, which may be a password: give only the position.
    const where = /position \d+/.exec((e as Error).message)?.[0];
    throw new ImagegateError('AUTH', `${display} is not valid JSON${where ? ` (at ${where})` : ''}: fix or remove it`);
  }
  if (!isObject(json)) throw new ImagegateError('AUTH', `${display} is not a registry auth file: it is not a JSON object`);
  const auths = optionalObject(json, 'auths', display);
  const credHelpers = optionalObject(json, 'credHelpers', display);
  const credsStore = json.credsStore;
  if (credsStore !== undefined && typeof credsStore !== 'string') throw new ImagegateError('AUTH', `${display}: "credsStore" must be a string`);
  return { display, auths, credHelpers, ...(credsStore ? { credsStore } : {}) };
}

async function readCapped(file: string, display: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    const code = systemErrorCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ImagegateError('AUTH', `cannot read ${display}: ${(e as Error).message}`, { cause: e });
  }
  try {
    // Read in chunks rather than trusting stat: `--authfile <(...)` is a pipe whose size reads as 0.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_AUTH_FILE_BYTES) throw new ImagegateError('AUTH', `${display} is larger than 1 MiB; that is not a registry auth file`);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks);
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    throw new ImagegateError('AUTH', `cannot read ${display}: ${(e as Error).message}`, { cause: e });
  } finally {
    await handle.close();
  }
}

/** One file's answer: its helper for the host if it names one, else (or if the helper has nothing) its `auths`. */
async function credentialsFromFile(config: AuthFile, target: Target, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  const helper = helperFor(config, target);
  if (helper !== undefined) {
    const found = await runHelper(helper, target, env);
    if (found !== undefined) return found;
  }
  for (const key of matchingAuthKeys(config.auths, target)) {
    const found = decodeEntry(config.auths[key], key, config.display);
    // Docker writes `"host": {}` into auths when a credsStore holds the secret: that is "nothing here".
    if (found !== undefined) return found;
  }
  return undefined;
}

interface Helper {
  suffix: string;
  /** Which setting chose it, for messages: `credHelpers["quay.io"]` or `credsStore`. */
  setting: string;
  display: string;
}

function helperFor(config: AuthFile, target: Target): Helper | undefined {
  // credHelpers keys are hosts, but Docker Hub's may be any alias or its v1 URL: compare them normalised.
  const keys = Object.keys(config.credHelpers);
  const key = keys.includes(target.host) ? target.host : keys.find((k) => isHostKeyFor(k, target));
  if (key !== undefined) {
    const suffix = config.credHelpers[key];
    if (typeof suffix !== 'string' || suffix === '') throw new ImagegateError('AUTH', `${config.display}: credHelpers["${key}"] must be a helper name such as "pass"`);
    return checkedHelper({ suffix, setting: `credHelpers["${key}"]`, display: config.display });
  }
  return config.credsStore === undefined ? undefined : checkedHelper({ suffix: config.credsStore, setting: 'credsStore', display: config.display });
}

function checkedHelper(helper: Helper): Helper {
  // The name becomes part of a program name looked up on PATH; a path in it would run some other program.
  if (/[/\\]/.test(helper.suffix) || helper.suffix === '.' || helper.suffix === '..') {
    throw new ImagegateError('AUTH', `${helper.display}: ${helper.setting} is "${helper.suffix}"; a helper name cannot contain a path`);
  }
  return helper;
}

/**
 * The host and namespace path a key applies to. Keys with a scheme are old-style URLs
 * ("https://index.docker.io/v1/") whose path is an API version, not a namespace, so only their host counts.
 */
function keyScope(key: string): { host: string; path: string } | undefined {
  const url = /^https?:\/\//i.exec(key);
  const rest = url ? key.slice(url[0].length) : key;
  const slash = rest.indexOf('/');
  const host = slash < 0 ? rest : rest.slice(0, slash);
  if (host === '') return undefined;
  const scopePath = url || slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  return { host: canonicalHost(host), path: scopePath };
}

function isHostKeyFor(key: string, target: Target): boolean {
  const scope = keyScope(key);
  return scope !== undefined && scope.host === target.hostKey && scope.path === '';
}

/**
 * The `auths` keys that apply to the target, best first: the most specific namespace
 * ("host/team/app" over "host/team" over "host"), then a key written exactly as the host over one that only
 * normalises to it (a URL or another Docker Hub alias), then file order.
 */
function matchingAuthKeys(auths: Record<string, unknown>, target: Target): string[] {
  const matches: { key: string; depth: number; exact: boolean; order: number }[] = [];
  Object.keys(auths).forEach((key, order) => {
    const scope = keyScope(key);
    if (scope === undefined || scope.host !== target.hostKey) return;
    if (scope.path !== '' && target.repository !== scope.path && !target.repository.startsWith(`${scope.path}/`)) return;
    matches.push({ key, depth: scope.path === '' ? 0 : scope.path.split('/').length, exact: key === target.host, order });
  });
  matches.sort((a, b) => b.depth - a.depth || Number(b.exact) - Number(a.exact) || a.order - b.order);
  return matches.map((m) => m.key);
}

function decodeEntry(entry: unknown, key: string, display: string): RegistryCredentials | undefined {
  const where = `${display}, auths["${key}"]`;
  if (!isObject(entry)) throw new ImagegateError('AUTH', `${where} is not a JSON object`);
  const auth = optionalString(entry, 'auth', where);
  const identityToken = optionalString(entry, 'identitytoken', where);
  const registryToken = optionalString(entry, 'registrytoken', where);
  let username = optionalString(entry, 'username', where);
  let password = optionalString(entry, 'password', where);

  if (auth) {
    // Node's base64 decoder skips junk silently; check first so a damaged entry is reported, not half-used.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(auth.trim())) throw new ImagegateError('AUTH', `${where}: "auth" is not base64; run \`docker login\` again`);
    const decoded = Buffer.from(auth.trim(), 'base64').toString('utf8').replace(/\0+$/, '');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new ImagegateError('AUTH', `${where}: "auth" does not decode to USER:PASSWORD; run \`docker login\` again`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
    if (username === '') throw new ImagegateError('AUTH', `${where}: "auth" has an empty username; run \`docker login\` again`);
  }
  if (!username && !password && !identityToken && !registryToken) return undefined;
  if (!username && password) throw new ImagegateError('AUTH', `${where} has a password but no username`);
  return {
    ...(username ? { username } : {}),
    ...(username ? { password: password ?? '' } : {}),
    ...(identityToken ? { identityToken } : {}),
    ...(registryToken ? { registryToken } : {}),
    source: display,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// docker-credential-helpers protocol

interface HelperRun {
  /** Set when the program could not be started at all. */
  spawnError?: Error;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

async function runHelper(helper: Helper, target: Target, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  const program = `docker-credential-${helper.suffix}`;
  const serverUrl = target.hostKey === 'docker.io' ? DOCKER_HUB_SERVER_URL : target.host;
  const what = `${program} (${helper.setting} in ${helper.display}) for ${target.host}`;
  const run = await spawnHelper(program, serverUrl, env);

  if (run.spawnError !== undefined) {
    if (systemErrorCode(run.spawnError) === 'ENOENT') {
      throw new ImagegateError(
        'AUTH',
        `${what}: ${program} is not on PATH. Install it, or remove ${helper.setting} from ${helper.display} and run \`docker login ${target.host}\``,
      );
    }
    throw new ImagegateError('AUTH', `${what}: cannot run it: ${run.spawnError.message}`, { cause: run.spawnError });
  }
  if (run.timedOut) {
    throw new ImagegateError('AUTH', `${what}: no answer after ${HELPER_TIMEOUT_MS / 1000} s. Check that it works on its own (\`echo ${serverUrl} | ${program} get\`)`);
  }
  if (run.exitCode !== 0) {
    // The helper protocol reports "no credentials" as a failure whose message says so; any helper's wording
    // contains this phrase (docker-credential-helpers' ErrCredentialsNotFound).
    if (/credentials not found/i.test(run.stdout + run.stderr)) return undefined;
    // On failure helpers print an error message, never a secret; quote a little of it to say what went wrong.
    const said = firstLine(run.stderr) || firstLine(run.stdout);
    const status = run.exitCode === null ? `was killed by ${run.signal ?? 'a signal'}` : `exited with status ${run.exitCode}`;
    throw new ImagegateError(
      'AUTH',
      `${what}: it ${status}${said ? `: ${said}` : ''}. Check that it works on its own (\`echo ${serverUrl} | ${program} get\`), or run \`docker login ${target.host}\``,
    );
  }

  // From here on stdout holds the secret: no message may quote it.
  const bad = (why: string) =>
    new ImagegateError('AUTH', `${what}: its answer ${why}. Check that the helper and its store work, or run \`docker login ${target.host}\` again`);
  let reply: unknown;
  try {
    reply = JSON.parse(run.stdout);
  } catch {
    throw bad('is not JSON');
  }
  if (!isObject(reply) || typeof reply.Username !== 'string' || typeof reply.Secret !== 'string') throw bad('lacks the Username and Secret strings');
  const source = program;
  if (reply.Username === '' && reply.Secret === '') return undefined; // some helpers answer "not found" this way
  if (reply.Username === '<token>') return { identityToken: reply.Secret, source };
  if (reply.Username === '') throw bad('has an empty Username');
  return { username: reply.Username, password: reply.Secret, source };
}

function spawnHelper(program: string, serverUrl: string, env: NodeJS.ProcessEnv): Promise<HelperRun> {
  return new Promise((resolve) => {
    // No shell: the program name comes from a config file. The given env also supplies the PATH it is found on.
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const stdout = capture(child.stdout);
    const stderr = capture(child.stderr);
    let timedOut = false;
    let spawnError: Error | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, HELPER_TIMEOUT_MS);
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ ...(spawnError ? { spawnError } : {}), exitCode, signal, timedOut, stdout: stdout(), stderr: stderr() });
    });
    // A helper that exits without reading stdin makes the write fail with EPIPE; its exit status tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
}

/** Collects a stream's text up to MAX_HELPER_OUTPUT_BYTES, draining (and dropping) the rest. */
function capture(stream: NodeJS.ReadableStream): () => string {
  const chunks: Buffer[] = [];
  let total = 0;
  stream.on('data', (chunk: Buffer) => {
    if (total >= MAX_HELPER_OUTPUT_BYTES) return;
    chunks.push(chunk.subarray(0, MAX_HELPER_OUTPUT_BYTES - total));
    total += chunk.length;
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0]?.trim() ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON shape checks

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalObject(obj: Record<string, unknown>, field: string, display: string): Record<string, unknown> {
  const v = obj[field];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new ImagegateError('AUTH', `${display}: "${field}" must be a JSON object`);
  return v;
}

function optionalString(obj: Record<string, unknown>, field: string, where: string): string | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ImagegateError('AUTH', `${where}: "${field}" must be a string`);
  return v;
}
