/**
 * Real registries for integration tests: Debian's `docker-registry` (distribution 2.8.2) on 127.0.0.1, with a
 * config of our own (never the package's default, whose htpasswd path is a directory), optionally behind TLS
 * signed by a throwaway CA, with htpasswd Basic auth, or with the Docker token (Bearer) flow served by a small
 * token server running in this process.
 *
 * Lifecycle: `startRegistry` returns the server and the CALLER stops it. Call it from `beforeAll` and
 * `await server?.stop()` in `afterAll`. Called inside a test instead, it is stopped when that test finishes. Two
 * safety nets keep a failing or aborted test file from leaving processes behind: every registry still running when
 * this process exits gets SIGKILL, and where util-linux's `setpriv` exists the registry is started with a
 * parent-death signal, so it dies with the test worker even when the worker itself is killed.
 */
import type { ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { requireTool, runOk, spawnServer, tempDir } from './tools.js';

export interface RegistryServer {
  /** host:port, e.g. "127.0.0.1:41234" */
  host: string;
  /** "http://127.0.0.1:41234" or "https://..." */
  url: string;
  /** set when TLS: PEM path of the CA that signed the server certificate */
  caFile?: string;
  /** set when TLS: a directory usable as skopeo's --cert-dir / containers certs.d (contains ca.crt) */
  certDir?: string;
  /** when auth is enabled */
  username?: string;
  password?: string;
  /** data directory (storage root) */
  dataDir: string;
  /** with tokenAuth: the realm the registry's Bearer challenge names, `<token server>/token` */
  tokenRealm?: string;
  /** with tokenAuth: the `service` the registry's challenge names and the token's `aud` */
  tokenService?: string;
  /** every request the token server answered, in order (empty without tokenAuth) */
  tokenRequests: TokenRequest[];
  /** stop with SIGKILL (simulate a crash) */
  kill(): Promise<void>;
  /** start again on the SAME port and data dir after kill() */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** the registry process log so far (stderr), for failure messages */
  log(): string;
}

export interface RegistryServerOptions {
  /** Serve https with a certificate for 127.0.0.1/localhost signed by a fresh CA (`caFile`, `certDir`). */
  tls?: boolean;
  /** Basic auth: user `imagegate` with a random password, stored as a bcrypt htpasswd entry. */
  htpasswd?: boolean;
  /**
   * Bearer auth through an in-process token server (https when `tls`). The same user/password as `htpasswd` gets
   * every action it asks for; a request without credentials gets an anonymous token granting only `pull`; wrong
   * credentials get 401. Takes precedence over `htpasswd` (the registry allows one access controller).
   */
  tokenAuth?: boolean;
  /**
   * Serve blob GETs as a 307 to `<origin>/docker/registry/v2/blobs/…/data` (docker-registry's `redirect` storage
   * middleware), as registries backed by S3 or a CDN do; the server at `origin` must serve the data directory.
   */
  redirectBlobsTo?: string;
}

/** One GET /token the token server answered. */
export interface TokenRequest {
  /** the scopes asked for, one entry per scope (repeated `scope` parameters and space-separated lists split) */
  scope: string[];
  /** whether the request carried Basic credentials (right or wrong: see `status`) */
  authenticated: boolean;
  /** the HTTP status answered: 200, 401 for wrong credentials, 400 for a wrong service */
  status: number;
}

const USERNAME = 'imagegate';
const AUTH_REALM = 'imagegate-test';
const TOKEN_SERVICE = 'imagegate-test';
const TOKEN_ISSUER = 'imagegate-test-issuer';
const TOKEN_LIFETIME_S = 300;
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Starting

export async function startRegistry(options: RegistryServerOptions = {}): Promise<RegistryServer | undefined> {
  const bin = requireTool('docker-registry');
  if (!bin) return undefined;
  const opensslBin = options.tls || options.tokenAuth ? requireTool('openssl') : undefined;
  if ((options.tls || options.tokenAuth) && !opensslBin) return undefined;
  const htpasswdBin = options.htpasswd && !options.tokenAuth ? requireTool('htpasswd') : undefined;
  if (options.htpasswd && !options.tokenAuth && !htpasswdBin) return undefined;

  const work = await tempDir('registry-');
  let tokenServer: TokenServer | undefined;
  try {
    const dataDir = path.join(work.path, 'data');
    await mkdir(dataDir);
    const password = options.htpasswd || options.tokenAuth ? randomBytes(18).toString('base64url') : undefined;

    let tls: TlsFiles | undefined;
    if (options.tls) tls = await makeTlsFiles(opensslBin!, path.join(work.path, 'tls'));

    let authYaml = '';
    if (options.tokenAuth) {
      tokenServer = await startTokenServer(opensslBin!, path.join(work.path, 'token'), USERNAME, password!, tls);
      authYaml = [
        'auth:',
        '  token:',
        `    realm: ${yamlString(tokenServer.realm)}`,
        `    service: ${yamlString(TOKEN_SERVICE)}`,
        `    issuer: ${yamlString(TOKEN_ISSUER)}`,
        `    rootcertbundle: ${yamlString(tokenServer.certFile)}`,
      ].join('\n');
    } else if (options.htpasswd) {
      const htpasswdFile = path.join(work.path, 'htpasswd');
      // -B: bcrypt, the only kind 2.8.2 honours; -b: password from the command line; -n: print, don't write.
      const { stdout } = await runOk(htpasswdBin!, ['-Bbn', USERNAME, password!]);
      await writeFile(htpasswdFile, stdout.trim() + '\n', { mode: 0o600 });
      authYaml = [
        'auth:',
        '  htpasswd:',
        `    realm: ${yamlString(AUTH_REALM)}`,
        `    path: ${yamlString(htpasswdFile)}`,
      ].join('\n');
    }

    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const configFile = path.join(work.path, 'config.yml');
    await writeFile(configFile, registryConfig({ dataDir, host, tls, authYaml, redirectBlobsTo: options.redirectBlobsTo }));

    const proc = new RegistryProcess(bin, configFile, `${tls ? 'https' : 'http'}://${host}`, tls?.caPem);
    await proc.start();

    let stopped = false;
    const server: RegistryServer = {
      host,
      url: proc.url,
      dataDir,
      tokenRequests: tokenServer?.requests ?? [],
      kill: () => proc.kill(),
      restart: async () => {
        if (stopped) throw new Error('registry-server: restart() after stop()');
        await proc.kill();
        await proc.start();
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await proc.stop();
          await tokenServer?.close();
        } finally {
          await work.cleanup();
        }
      },
      log: () => proc.log(),
    };
    if (tls) Object.assign(server, { caFile: tls.caFile, certDir: tls.certDir });
    if (password !== undefined) Object.assign(server, { username: USERNAME, password });
    if (tokenServer) Object.assign(server, { tokenRealm: tokenServer.realm, tokenService: TOKEN_SERVICE });

    try {
      onTestFinished(() => server.stop());
    } catch {
      // Not inside a test (e.g. in beforeAll): the caller stops it, as documented above.
    }
    return server;
  } catch (err) {
    await tokenServer?.close();
    await work.cleanup();
    throw err;
  }
}

/** A port that was free a moment ago on 127.0.0.1 (bind to port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error(`registry-server: unexpected listen address ${String(address)}`));
      });
    });
  });
}

/** A YAML double-quoted scalar: JSON strings are valid YAML. */
function yamlString(value: string): string {
  return JSON.stringify(value);
}

function registryConfig(c: { dataDir: string; host: string; tls: TlsFiles | undefined; authYaml: string; redirectBlobsTo: string | undefined }): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${yamlString(c.dataDir)}`,
    '  delete:',
    '    enabled: true',
    // The purger walks the upload directories at start-up; nothing for a short-lived test registry to purge.
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${yamlString(c.host)}`,
    // Fixed, so upload Locations (HMAC-signed _state) stay valid across kill() and restart().
    '  secret: imagegate-test-http-secret',
  ];
  if (c.tls) {
    lines.push(
      '  tls:',
      `    certificate: ${yamlString(c.tls.serverCertFile)}`,
      `    key: ${yamlString(c.tls.serverKeyFile)}`,
    );
  }
  if (c.authYaml) lines.push(c.authYaml);
  if (c.redirectBlobsTo !== undefined) {
    lines.push('middleware:', '  storage:', '    - name: redirect', '      options:', `        baseurl: ${yamlString(c.redirectBlobsTo)}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------------
// The registry process

class RegistryProcess {
  private child: ChildProcess | undefined;
  private logText = '';
  private spawnError: Error | undefined;

  constructor(
    private readonly bin: string,
    private readonly configFile: string,
    readonly url: string,
    private readonly caPem: string | undefined,
  ) {}

  log(): string {
    return this.logText;
  }

  private append(text: string): void {
    this.logText += text;
    if (this.logText.length > LOG_LIMIT) this.logText = this.logText.slice(-LOG_LIMIT);
  }

  private running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null && this.spawnError === undefined;
  }

  async start(): Promise<void> {
    if (this.running()) throw new Error('registry-server: already running');
    if (this.logText) this.append('--- imagegate test: registry restarted ---\n');
    this.spawnError = undefined;
    // The config is the whole truth: REGISTRY_* variables would override it.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('REGISTRY_')) env[key] = value;
    const child = spawnServer(this.bin, ['serve', this.configFile], { env });
    this.child = child;
    child.stdout!.on('data', (chunk: Buffer) => this.append(chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => this.append(chunk.toString('utf8')));
    child.on('error', (err) => {
      this.spawnError = err;
      this.append(`--- imagegate test: spawn failed: ${err.message} ---\n`);
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!this.running()) {
        await exited(child);
        const how = describeExit(child, this.spawnError);
        throw new Error(`registry-server: docker-registry exited before answering (${how})\n--- log ---\n${this.logText}`);
      }
      if ((await this.probe()) !== undefined) return;
      if (Date.now() > deadline) {
        await this.kill();
        const what = `GET ${this.url}/v2/ within ${READY_TIMEOUT_MS / 1000} s`;
        throw new Error(`registry-server: docker-registry did not answer ${what}\n--- log ---\n${this.logText}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The status of GET /v2/, or undefined when nothing answered (yet). */
  private probe(): Promise<number | undefined> {
    return new Promise((resolve) => {
      const target = `${this.url}/v2/`;
      const onResponse = (res: http.IncomingMessage): void => {
        res.resume();
        resolve(res.statusCode);
      };
      const req = this.caPem
        ? https.request(target, { ca: this.caPem, agent: false, timeout: 2000 }, onResponse)
        : http.request(target, { agent: false, timeout: 2000 }, onResponse);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(undefined));
      req.end();
    });
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running()) return;
    child.kill('SIGKILL');
    await exited(child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running()) return;
    await terminate(child, STOP_TIMEOUT_MS);
  }
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Stops a server process: SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves once it exited. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await exited(child);
  } finally {
    clearTimeout(timer);
  }
}

function describeExit(child: ChildProcess, spawnError: Error | undefined): string {
  if (spawnError) return `spawn failed: ${spawnError.message}`;
  return child.signalCode ? `killed by ${child.signalCode}` : `exit code ${child.exitCode}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates (openssl)

export interface TlsFiles {
  caFile: string;
  caPem: string;
  certDir: string;
  serverCertFile: string;
  serverKeyFile: string;
}

/** Our own openssl config, so neither the system's openssl.cnf defaults nor -addext duplicates get in the way. */
const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = imagegate-test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[signer_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
subjectKeyIdentifier = hash
`;

const EC_P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function writeOpensslConfig(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'openssl.cnf');
  await writeFile(file, OPENSSL_CONFIG);
  return file;
}

/** A self-signed EC P-256 certificate (a CA: `ext` says which extensions) and its PKCS#8 key. */
async function selfSigned(openssl: string, cnf: string, dir: string, name: string, cn: string, ext: string) {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await runOk(openssl, [
    'req', '-config', cnf, '-x509', ...EC_P256, '-keyout', keyFile, '-out', certFile,
    '-days', '7', '-subj', `/CN=${cn}`, '-extensions', ext,
  ]);
  return { certFile, keyFile };
}

export async function makeTlsFiles(openssl: string, dir: string): Promise<TlsFiles> {
  const cnf = await writeOpensslConfig(dir);
  const ca = await selfSigned(openssl, cnf, dir, 'ca', 'imagegate test CA', 'ca_ext');
  const serverKeyFile = path.join(dir, 'server.key');
  const serverCsr = path.join(dir, 'server.csr');
  const serverCertFile = path.join(dir, 'server.crt');
  await runOk(openssl, [
    'req', '-config', cnf, '-new', ...EC_P256, '-keyout', serverKeyFile, '-out', serverCsr, '-subj', '/CN=localhost',
  ]);
  await runOk(openssl, [
    'x509', '-req', '-in', serverCsr, '-CA', ca.certFile, '-CAkey', ca.keyFile,
    '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '7',
    '-extfile', cnf, '-extensions', 'server_ext', '-out', serverCertFile,
  ]);
  const certDir = path.join(dir, 'certs.d');
  await mkdir(certDir);
  await copyFile(ca.certFile, path.join(certDir, 'ca.crt'));
  return { caFile: ca.certFile, caPem: await readFile(ca.certFile, 'utf8'), certDir, serverCertFile, serverKeyFile };
}

// ---------------------------------------------------------------------------------------------------------------
// Token server (Docker registry token protocol, docs/spec/auth/token.md)

interface TokenServer {
  realm: string;
  /** PEM of the self-signed certificate whose key signs the tokens: the registry's rootcertbundle */
  certFile: string;
  requests: TokenRequest[];
  close(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

async function startTokenServer(
  openssl: string,
  dir: string,
  username: string,
  password: string,
  tls: TlsFiles | undefined,
): Promise<TokenServer> {
  const cnf = await writeOpensslConfig(dir);
  const signer = await selfSigned(openssl, cnf, dir, 'signer', 'imagegate test token signer', 'signer_ext');
  const signingKey = createPrivateKey(await readFile(signer.keyFile));
  // x5c: the chain as base64 (not base64url) DER; 2.8.2 verifies it against rootcertbundle and uses the leaf's key.
  const x5c = [new X509Certificate(await readFile(signer.certFile)).raw.toString('base64')];
  const requests: TokenRequest[] = [];

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    // Only GET: OAuth2 clients POST first and fall back to GET on 404 (docs/spec/auth/oauth.md).
    if (req.method !== 'GET' || url.pathname !== '/token') {
      reply(404, { errors: [{ code: 'NOT_FOUND', message: `${req.method} ${url.pathname}` }] });
      return;
    }
    const scope = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const credentials = parseBasic(req.headers.authorization);
    const authenticated = credentials !== undefined;
    const record = (status: number): void => void requests.push({ scope, authenticated, status });

    const service = url.searchParams.get('service');
    if (service !== null && service !== TOKEN_SERVICE) {
      record(400);
      reply(400, { errors: [{ code: 'DENIED', message: `unknown service ${service}` }] });
      return;
    }
    if (credentials && (credentials.username !== username || credentials.password !== password)) {
      record(401);
      reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'wrong username or password' }] }, {
        'WWW-Authenticate': `Basic realm="${AUTH_REALM}"`,
      });
      return;
    }
    const access = grant(scope, authenticated);
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(signingKey, x5c, {
      iss: TOKEN_ISSUER,
      sub: credentials?.username ?? '',
      aud: TOKEN_SERVICE,
      exp: now + TOKEN_LIFETIME_S,
      nbf: now - 5,
      iat: now,
      jti: randomUUID(),
      access,
    });
    record(200);
    const issuedAt = new Date(now * 1000).toISOString();
    reply(200, { token, access_token: token, expires_in: TOKEN_LIFETIME_S, issued_at: issuedAt });
  };

  const server = tls
    ? https.createServer({ cert: await readFile(tls.serverCertFile), key: await readFile(tls.serverKeyFile) }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('registry-server: token server has no port');
  return {
    realm: `${tls ? 'https' : 'http'}://127.0.0.1:${address.port}/token`,
    certFile: signer.certFile,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { username: decoded, password: '' };
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * What to put in the token's `access` claim: everything asked for when authenticated, only `pull` on repositories
 * otherwise. Scopes are `type:name:actions`; the name may itself hold a `:` (host:port), so split at the first and
 * last colon.
 */
function grant(scopes: readonly string[], authenticated: boolean): Access[] {
  const access: Access[] = [];
  for (const scope of scopes) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const asked = scope.slice(last + 1).split(',').filter((a) => a !== '');
    const actions = authenticated ? asked : type === 'repository' ? asked.filter((a) => a === 'pull') : [];
    if (actions.length > 0) access.push({ type, name, actions });
  }
  return access;
}

/** A compact JWS, ES256 with the signature as raw r||s (JOSE), not DER. */
function signJwt(key: KeyObject, x5c: string[], claims: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: 'ES256', typ: 'JWT', x5c })}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

