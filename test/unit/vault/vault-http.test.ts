import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vaultTransport } from '../../../src/vault/vault-http.js';
import { VaultSession } from '../../../src/vault/vault-session.js';
import { makeTlsFiles } from '../../support/registry-server.js';
import { findOnPath, testTempDir } from '../../support/tools.js';

interface Seen {
  method: string;
  url: string;
  token: string | undefined;
  body: string;
}

let server: http.Server;
let base: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, token: req.headers['x-vault-token'] as string | undefined, body });
      if (req.url === '/v1/standby/write') {
        res.writeHead(307, { location: '/v1/active/write' }).end();
      } else if (req.url === '/v1/html') {
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
      } else if (req.url === '/v1/empty') {
        res.writeHead(204).end();
      } else if (req.url === '/v1/auth/approle/login') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ auth: { client_token: 's.fromlogin', lease_duration: 600, renewable: true } }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { echo: body === '' ? null : JSON.parse(body) } }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => new Promise<void>((r) => server.close(() => r())));

describe("node-vault's transport over undici", () => {
  const send = vaultTransport({ timeoutMs: 5000 }).defaults({ strictSSL: true });

  it('sends the method, headers and JSON body node-vault gives it, and parses the JSON answer', async () => {
    seen.length = 0;
    const res = await send({ method: 'POST', uri: `${base}/v1/transit/encrypt/k`, headers: { 'X-Vault-Token': 't1' }, json: { plaintext: 'AA==' } });
    expect(res).toEqual({ statusCode: 200, body: { data: { echo: { plaintext: 'AA==' } } }, request: { path: '/v1/transit/encrypt/k' } });
    expect(seen).toEqual([{ method: 'POST', url: '/v1/transit/encrypt/k', token: 't1', body: '{"plaintext":"AA=="}' }]);
  });

  it("follows a standby's 307 to the active node with the same body", async () => {
    seen.length = 0;
    const res = await send({ method: 'POST', uri: `${base}/v1/standby/write`, headers: { 'X-Vault-Token': 't1' }, json: { a: 1 } });
    expect(res.statusCode).toBe(200);
    expect(seen.map((s) => [s.url, s.body])).toEqual([
      ['/v1/standby/write', '{"a":1}'],
      ['/v1/active/write', '{"a":1}'],
    ]);
  });

  it('keeps a body that is not JSON as text, and an empty one as undefined', async () => {
    expect(await send({ method: 'GET', uri: `${base}/v1/html` })).toMatchObject({ statusCode: 502, body: '<html>bad gateway</html>' });
    expect(await send({ method: 'GET', uri: `${base}/v1/empty` })).toMatchObject({ statusCode: 204, body: undefined });
  });

  it.skipIf(!findOnPath('openssl'))("trusts Vault's TLS certificate through the CA it is given (VAULT_CACERT), and only then", async () => {
    const dir = await testTempDir('vault-tls-');
    const tls = await makeTlsFiles('openssl', dir);
    const secure = https.createServer({ cert: await readFile(tls.serverCertFile), key: await readFile(tls.serverKeyFile) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}');
    });
    await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
    const uri = `https://127.0.0.1:${(secure.address() as AddressInfo).port}/v1/sys/health`;
    try {
      const trusting = vaultTransport({ ca: tls.caPem, timeoutMs: 5000 });
      expect(await trusting.defaults({ strictSSL: true })({ method: 'GET', uri })).toMatchObject({ statusCode: 200, body: { data: { ok: true } } });
      await trusting.close();
      const untrusting = vaultTransport({ timeoutMs: 5000 });
      await expect(untrusting.defaults({ strictSSL: true })({ method: 'GET', uri })).rejects.toMatchObject({ code: expect.stringMatching(/CERT|SIGNATURE|ISSUER/) });
      await untrusting.close();
    } finally {
      await new Promise<void>((r) => secure.close(() => r()));
    }
  });

  it('fails with the system error code when nothing listens', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(send({ method: 'GET', uri: `http://127.0.0.1:${port}/v1/x` })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it("a session sends its own token only: never VAULT_TOKEN from the environment on a login (node-vault's default)", async () => {
    seen.length = 0;
    const previous = process.env.VAULT_TOKEN;
    process.env.VAULT_TOKEN = 's.environment-token';
    try {
      const session = new VaultSession({ address: base, auth: { method: 'approle', mount: 'approle', roleId: 'r', secretId: 'sid' } });
      await session.write('transit/encrypt/k', { plaintext: 'AA==' }, 'wrap');
    } finally {
      if (previous === undefined) delete process.env.VAULT_TOKEN;
      else process.env.VAULT_TOKEN = previous;
    }
    expect(seen.map((s) => [s.url, s.token])).toEqual([
      ['/v1/auth/approle/login', undefined],
      ['/v1/transit/encrypt/k', 's.fromlogin'],
    ]);
  });
});
