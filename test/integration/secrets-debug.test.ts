/**
 * No debug setting makes imagegate print a secret (issue 12, item 6). node-vault 0.12 sends with axios, whose
 * follow-redirects printed every request's options, the `X-Vault-Token` header included, under `DEBUG=*` and
 * `DEBUG=follow-redirects`, and Node's http agent printed them under `NODE_DEBUG=http`: a node's decrypt-capable
 * token ended up in the key provider's pod log. Here the real CLI runs against a real OpenBao with each debug
 * setting, as every identity kind (token, AppRole, JWT), for encrypt, decrypt, init --check and the key provider (cmd
 * and gRPC), and a failure too; no output may hold the token, the secret id, the JWT, a token Vault handed out at
 * login, or a layer key. (The key provider's stdout is the protocol's answer, which carries the layer key by design
 * to the runtime; it is checked for everything else.)
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindingContext } from '../../src/crypto/schemes/vault-item.js';
import { buildOciLayout, randomLayerFiles, readManifestFor, type BuiltLayout } from '../support/image-builder.js';
import { CLI, imagegate } from '../support/imagegate.js';
import { callKeyProviderJson } from '../support/keyprovider-grpc-client.js';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';
import { clusterIssuer, serviceAccountJwtRole, serviceAccountToken } from '../support/service-accounts.js';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir, testTempDir } from '../support/tools.js';

const ready = Boolean(findOpenBao());
const KEY = 'layers';
const BINDING = 'registry.example/team/app';
const PROVIDER_ANNOTATION = 'org.opencontainers.image.enc.keys.provider.imagegate';

/** Every way a user turns on debug output that the brief names. */
const DEBUG_SETTINGS: Array<Record<string, string>> = [{ DEBUG: '*' }, { DEBUG: 'follow-redirects' }, { NODE_DEBUG: 'http,net,tls' }, { IMAGEGATE_DEBUG: '1' }];
/** Service, batch and recovery tokens as OpenBao (`s.`) and Vault (`hvs.`) write them. */
const VAULT_TOKEN_SHAPE = /\b(?:hv)?[sbr]\.[A-Za-z0-9_-]{20,}/;

let bao: OpenBaoServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let src: BuiltLayout;
let encrypted: string;
const secrets: Record<string, string> = {};
const env = { token: {} as Record<string, string>, approle: {} as Record<string, string>, jwt: {} as Record<string, string> };
let keyproviderConfig: string;
let unwrapRequest: Buffer;

/** Fails naming the secret and the output it leaked into; never prints the secret itself in full. */
function expectNoSecrets(output: string, what: string, options: { layerKeys?: boolean } = {}): void {
  for (const [name, value] of Object.entries(secrets)) {
    if (options.layerKeys === false && name.startsWith('layer key')) continue;
    expect(output.includes(value), `${what} printed the ${name}`).toBe(false);
  }
  const token = VAULT_TOKEN_SHAPE.exec(output);
  expect(token === null, `${what} printed a Vault token (${token?.[0].slice(0, 6)}…)`).toBe(true);
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-secrets-');
  cleanup = dir.cleanup;
  work = dir.path;
  bao = (await startOpenBao())!;
  await bao.api('POST', `transit/keys/${KEY}`, { derived: true });
  await bao.api('PUT', 'sys/policies/acl/wrap-unwrap', {
    policy: `path "transit/encrypt/${KEY}" { capabilities = ["update"] }\npath "transit/decrypt/${KEY}" { capabilities = ["update"] }`,
  });
  await bao.api('PUT', 'sys/policies/acl/unwrap', { policy: `path "transit/decrypt/${KEY}" { capabilities = ["update"] }` });

  // A token (not root: the root token is the test's own), an AppRole secret id and a service-account JWT.
  secrets['Vault token'] = (await bao.api('POST', 'auth/token/create', { policies: ['wrap-unwrap'], ttl: '10m' })).auth.client_token as string;
  await bao.api('POST', 'auth/approle/role/ci', { token_policies: ['wrap-unwrap'], token_ttl: '10m' });
  const roleId = (await bao.api('GET', 'auth/approle/role/ci/role-id')).data.role_id as string;
  secrets['AppRole secret id'] = (await bao.api('POST', 'auth/approle/role/ci/secret-id', {})).data.secret_id as string;
  const issuer = clusterIssuer();
  await serviceAccountJwtRole(bao, issuer, 'web', { namespace: 'apps', name: 'web' }, 'unwrap');
  const jwt = serviceAccountToken(issuer, 'apps', 'web');
  secrets.JWT = jwt;
  // Its signature alone is as good as the whole token to nobody, but it is the part that must never show.
  secrets['JWT signature'] = jwt.split('.')[2]!;
  const jwtFile = path.join(work, 'web.token');
  await writeFile(jwtFile, jwt, { mode: 0o600 });
  env.token = { VAULT_ADDR: bao.address, VAULT_TOKEN: secrets['Vault token'] };
  env.approle = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'approle', VAULT_ROLE_ID: roleId, VAULT_SECRET_ID: secrets['AppRole secret id'] };
  env.jwt = { VAULT_ADDR: bao.address, IMAGEGATE_VAULT_AUTH: 'jwt', IMAGEGATE_VAULT_ROLE: 'web', IMAGEGATE_VAULT_JWT_FILE: jwtFile };

  src = await buildOciLayout(path.join(work, 'src'), {
    tag: 'v1',
    images: [{ layers: [{ files: randomLayerFiles(91, 2, 50 * 1024) }, { files: [{ path: 'etc/motd', content: 'secret\n' }] }] }],
  });
  encrypted = path.join(work, 'enc');
  const enc = await imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${encrypted}:v1`, '-r', `vault:transit/${KEY}`, '--bind', BINDING, '-q'], { env: env.token });
  expect(enc.code, enc.stderr).toBe(0);

  // The layer keys, unwrapped here as root: the private options (base64, as the Transit plaintext) and the AES key.
  const manifest = await readManifestFor(encrypted, 'v1');
  for (const [i, layer] of manifest.layers.entries()) {
    const annotation = layer.annotations?.[PROVIDER_ANNOTATION];
    expect(annotation, `layer ${i} is Vault-wrapped`).toBeDefined();
    const item = JSON.parse(Buffer.from(annotation!, 'base64').toString()) as { ciphertext: string; binding: string };
    const plain = (await bao.api('POST', `transit/decrypt/${KEY}`, { ciphertext: item.ciphertext, context: bindingContext(item.binding).toString('base64') })).data.plaintext as string;
    secrets[`layer key options of layer ${i}`] = plain;
    secrets[`layer key of layer ${i}`] = (JSON.parse(Buffer.from(plain, 'base64').toString()) as { symkey: string }).symkey;
    if (i === 0) {
      unwrapRequest = Buffer.from(JSON.stringify({ op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: { Parameters: { imagegate: ['RW5hYmxlZA=='] } }, annotation } }));
    }
  }

  keyproviderConfig = path.join(work, 'keyprovider.json');
  await writeFile(keyproviderConfig, JSON.stringify({ vault: env.approle }), { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await bao?.stop();
  await cleanup?.();
});

const registryReady = Boolean(requireTool('docker-registry') && requireTool('openssl') && requireTool('htpasswd'));

describe.skipIf(!registryReady)('no registry password in the webhook\'s output, whatever debug setting is on', () => {
  let reg: RegistryServer;
  let policy: string;
  let pod: string;
  let removeWebhookDir: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    reg = (await startRegistry({ tls: true, htpasswd: true }))!;
    const temp = await tempDir('leak-webhook-');
    removeWebhookDir = temp.cleanup;
    const dir = temp.path;
    const key = await makeKeyPair(path.join(dir, 'keys'), 'ec-p256');
    const image = await buildOciLayout(path.join(dir, 'src'), { tag: 'v1', images: [{ layers: [{ files: [{ path: 'etc/motd', content: 'hi\n' }] }] }] });
    const push = await imagegate(['encrypt', `oci:${image.dir}:v1`, `docker://${reg.host}/shop/app:1`, '-r', `jwe:${key.publicKeyPath}`, '--creds', `${reg.username}:${reg.password}`, '--ca-cert', reg.caFile!, '-q']);
    expect(push.code, push.stderr).toBe(0);
    policy = path.join(dir, 'policy.yaml');
    await writeFile(policy, `apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nmode: enforce\nrepositories:\n  - match: ${reg.host}/shop/**\n    requireEncrypted: true\n`);
    pod = path.join(dir, 'pod.yaml');
    await writeFile(pod, `apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  namespace: shop\nspec:\n  containers:\n    - name: app\n      image: ${reg.host}/shop/app:1\n`);
  }, 120_000);
  afterAll(async () => {
    await reg?.stop();
    await removeWebhookDir?.();
  });

  it.each(DEBUG_SETTINGS.map((s) => [Object.entries(s).map(([k, v]) => `${k}=${v}`).join(' '), s] as const))('%s: webhook review looks the image up with the credentials and prints none of them', async (_name, debug) => {
    // The password arrives on stdin (--creds USER --creds-stdin), as a CI job would pass it, and must not come back out.
    const res = await imagegate(['webhook', 'review', '--policy', policy, pod, '--creds', reg.username!, '--creds-stdin', '--ca-cert', reg.caFile!], { env: debug, input: `${reg.password}\n` });
    expect(res.code, res.stdout + res.stderr.slice(-2000)).toBe(0);
    expect(res.stdout).toContain('allowed Pod shop/app');
    const output = res.stdout + res.stderr;
    expect(output.includes(reg.password!), 'the registry password').toBe(false);
    expect(output.includes(Buffer.from(`${reg.username}:${reg.password}`).toString('base64')), 'the Basic authorization').toBe(false);
  });
});

describe.skipIf(!ready)('no secret in any output, whatever debug setting is on (OpenBao)', () => {
  describe.each(DEBUG_SETTINGS.map((s) => [Object.entries(s).map(([k, v]) => `${k}=${v}`).join(' '), s] as const))('%s', (_name, debug) => {
    it('encrypt as a token and as an AppRole; decrypt and init --check as a JWT workload', async () => {
      const runs: Array<[string, Promise<{ code: number | null; stdout: string; stderr: string }>]> = [];
      const enc1 = await testTempDir('leak-enc-');
      const enc2 = await testTempDir('leak-enc-');
      const dec = await testTempDir('leak-dec-');
      runs.push(['encrypt (token)', imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${enc1}:v1`, '-r', `vault:transit/${KEY}`, '--bind', BINDING], { env: { ...env.token, ...debug } })]);
      runs.push(['encrypt (AppRole)', imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${enc2}:v1`, '-r', `vault:transit/${KEY}`, '--bind', BINDING], { env: { ...env.approle, ...debug } })]);
      runs.push(['decrypt (JWT)', imagegate(['decrypt', `oci:${encrypted}:v1`, `oci:${dec}:v1`, '--vault'], { env: { ...env.jwt, ...debug } })]);
      runs.push(['init --check (JWT)', imagegate(['init', '--check', `oci:${encrypted}:v1`, '--platform', 'linux/amd64'], { env: { ...env.jwt, ...debug } })]);
      // A failure: the workload may not wrap. Error paths print more than success paths.
      runs.push(['a refused encrypt (JWT)', imagegate(['encrypt', `oci:${src.dir}:v1`, `oci:${await testTempDir('leak-denied-')}:v1`, '-r', `vault:transit/${KEY}`, '--bind', BINDING], { env: { ...env.jwt, ...debug } })]);
      for (const [what, pending] of runs) {
        const res = await pending;
        expect(res.code, `${what}: ${res.stderr.slice(-2000)}`).toBe(what.startsWith('a refused') ? 7 : 0);
        expectNoSecrets(res.stdout + res.stderr, what);
      }
    });

    it('keyprovider as a command: nothing but the answer on stdout, no secret on stderr', async () => {
      const res = await imagegate(['keyprovider', '--config', keyproviderConfig], { env: { ...debug }, input: unwrapRequest });
      expect(res.code, res.stderr.slice(-2000)).toBe(0);
      const answer = JSON.parse(res.stdout) as { keyunwrapresults: { optsdata: string } };
      expect(answer.keyunwrapresults.optsdata).toBe(secrets['layer key options of layer 0']);
      expectNoSecrets(res.stderr, 'keyprovider (cmd) stderr');
      expectNoSecrets(res.stdout, 'keyprovider (cmd) stdout', { layerKeys: false });
    });

    it('keyprovider --grpc: the long-running node process logs no secret while it logs in and unwraps', async () => {
      const server = spawn(process.execPath, [CLI, 'keyprovider', '--config', keyproviderConfig, '--grpc', '127.0.0.1:0'], {
        env: { ...process.env, ...debug },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      server.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      server.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((resolve) => server.once('close', () => resolve()));
      try {
        const address = await new Promise<string>((resolve, reject) => {
          const poll = setInterval(() => {
            const m = /^(127\.0\.0\.1:\d+)$/m.exec(stdout);
            if (m !== null) {
              clearInterval(poll);
              resolve(m[1]!);
            }
          }, 50);
          server.once('exit', (code) => {
            clearInterval(poll);
            reject(new Error(`keyprovider --grpc exited with ${code}: ${stderr.slice(-2000)}`));
          });
        });
        const answer = await callKeyProviderJson(address, 'UnWrapKey', unwrapRequest);
        expect((JSON.parse(answer) as { keyunwrapresults: { optsdata: string } }).keyunwrapresults.optsdata).toBe(secrets['layer key options of layer 0']);
      } finally {
        server.kill('SIGTERM');
        await exited;
      }
      expectNoSecrets(stdout + stderr, 'keyprovider --grpc');
    });
  });
});
