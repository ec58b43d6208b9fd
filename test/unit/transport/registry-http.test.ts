/**
 * Error paths and protocol corners of the registry HTTP layer against a scripted node:http server on 127.0.0.1:
 * retries and their limits, Retry-After, 401 re-challenges, redirects that must not carry credentials, and the
 * registry's error JSON. Real behaviour is proven against docker-registry in test/integration/registry.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAuthenticate } from '../../../src/transport/registry/challenge.js';
import { RegistryHttp } from '../../../src/transport/registry/http.js';
import { RepositoryClient } from '../../../src/transport/registry/client.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server answering `/v2/` with 200 unless `handler` says otherwise; returns host:port and the requests seen. */
async function serve(handler: Handler): Promise<{ host: string; seen: Array<{ method: string; url: string; auth?: string }> }> {
  const seen: Array<{ method: string; url: string; auth?: string }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, ...(req.headers.authorization !== undefined ? { auth: req.headers.authorization } : {}) });
    req.resume();
    req.on('end', () => handler(req, res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const fast = { attempts: 3, baseDelayMs: 1 };

describe('parseAuthenticate', () => {
  it('reads Bearer parameters, quoted commas included', () => {
    expect(parseAuthenticate('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' } },
    ]);
  });

  it('splits several challenges and unescapes quoted strings', () => {
    expect(parseAuthenticate('Basic realm="a \\"b\\"", Bearer realm=x,error=insufficient_scope')).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'insufficient_scope' } },
    ]);
  });
});

describe('RegistryHttp', () => {
  it('retries a 503 and succeeds, and stops retrying after the policy allows', async () => {
    let failures = 2;
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      if (failures-- > 0) return json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'busy' }] });
      res.writeHead(200, { 'docker-content-digest': 'x' }).end();
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    await expect(client.hasBlob(`sha256:${'0'.repeat(64)}`)).resolves.toBe(true);
    expect(seen.filter((r) => r.method === 'HEAD')).toHaveLength(3);

    failures = 10;
    const err = await client.hasBlob(`sha256:${'1'.repeat(64)}`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY', temporary: false });
    expect((err as Error).message).toMatch(/HTTP 503.*tried 3 times/);
    await client.http.close();
  });

  it('waits as long as Retry-After asks', async () => {
    let first = true;
    const { host } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      if (first) {
        first = false;
        return json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, { 'retry-after': '1' });
      }
      res.writeHead(404).end();
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    const started = Date.now();
    await expect(client.hasBlob(`sha256:${'0'.repeat(64)}`)).resolves.toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    await client.http.close();
  });

  it('surfaces the registry error code and message with a remedy', async () => {
    const { host } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry', detail: { name: 'a/b' } }] });
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    await expect(client.getManifest('latest')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringMatching(/pull manifest .*a\/b:latest: registry .* answered NAME_UNKNOWN: repository name not known to registry .*check the repository name/),
    });
    await client.http.close();
  });

  it('fetches a new token with the wider scope on an insufficient_scope challenge', async () => {
    let tokenCalls: string[] = [];
    const { host } = await serve((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/token') {
        tokenCalls.push(url.searchParams.getAll('scope').join(' '));
        return json(res, 200, { token: `t${tokenCalls.length}`, expires_in: 300 });
      }
      const challenge = `Bearer realm="http://${req.headers.host}/token",service="svc"`;
      if (req.url === '/v2/') return json(res, 401, {}, { 'www-authenticate': challenge });
      if (req.headers.authorization === 'Bearer t2') return res.writeHead(200).end();
      json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': `${challenge},scope="repository:other:pull",error="insufficient_scope"` });
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast, credentials: { username: 'u', password: 'p', source: 'test' } }), 'a/b');
    await expect(client.hasBlob(`sha256:${'0'.repeat(64)}`)).resolves.toBe(true);
    expect(tokenCalls).toEqual(['repository:a/b:push,pull', 'repository:other:pull repository:a/b:push,pull']);
    // The widened token is cached: another request needs no token call.
    tokenCalls = [];
    await client.hasBlob(`sha256:${'1'.repeat(64)}`);
    expect(tokenCalls).toEqual([]);
    await client.http.close();
  });

  it('follows a blob redirect to another origin without our Authorization', async () => {
    const storage = await serve((_req, res) => res.writeHead(200, { 'content-length': '3' }).end('abc'));
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 401, {}, { 'www-authenticate': 'Basic realm="r"' });
      res.writeHead(307, { location: `http://${storage.host}/blob?sig=1` }).end();
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast, credentials: { username: 'u', password: 'p', source: 'test' } }), 'a/b');
    const res = await client.getBlob(`sha256:${'0'.repeat(64)}`);
    expect(await res.body.text()).toBe('abc');
    expect(seen.at(-1)?.auth).toMatch(/^Basic /);
    expect(storage.seen).toEqual([{ method: 'GET', url: '/blob?sig=1' }]);
    await client.http.close();
  });

  it('refuses a plain-HTTP token realm for a TLS registry rather than leak credentials', async () => {
    const { RegistryAuth } = await import('../../../src/transport/registry/auth.js');
    const auth = new RegistryAuth('reg.example', { username: 'u', password: 'p', source: 'test' }, () => Promise.reject(new Error('must not be called')), false);
    auth.learn(parseAuthenticate('Bearer realm="http://evil.example/token",service="s"'));
    await expect(auth.header(['repository:a:pull'])).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/plain-HTTP token realm/) });
  });
});
