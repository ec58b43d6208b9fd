/**
 * Error paths and protocol corners of the registry HTTP layer against a scripted node:http server on 127.0.0.1:
 * retries and their limits, Retry-After, 401 re-challenges, redirects that must not carry credentials, and the
 * registry's error JSON. Real behaviour is proven against docker-registry in test/integration/registry.test.ts.
 */
import http from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAuthenticate } from '../../../src/transport/registry/challenge.js';
import { RegistryHttp } from '../../../src/transport/registry/http.js';
import { RepositoryClient } from '../../../src/transport/registry/client.js';
import { worthRetrying } from '../../../src/util/retry.js';
import type { ImagegateError } from '../../../src/errors.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
type Seen = { method: string; url: string; auth?: string; range?: string };

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server answering `/v2/` with 200 unless `handler` says otherwise; returns host:port and the requests seen. */
async function serve(handler: Handler): Promise<{ host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({
      method: req.method!,
      url: req.url!,
      ...(req.headers.authorization !== undefined ? { auth: req.headers.authorization } : {}),
      ...(req.headers.range !== undefined ? { range: req.headers.range } : {}),
    });
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
    // Still temporary (a later run may succeed), but spent: a retry loop around this one does not try it again.
    expect(err).toMatchObject({ code: 'REGISTRY', temporary: true });
    expect(worthRetrying(err)).toBe(false);
    // Said of a layer further up, it is still spent.
    expect(worthRetrying((err as ImagegateError).within((m) => `layer 0: ${m}`, { layer: 'layer 0' }))).toBe(false);
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
    expect(res.url.href).toBe(`http://${storage.host}/blob?sig=1`);
    await client.http.close();
  });

  it('authorizes a redirect that comes back to the registry, and only that hop', async () => {
    let registryHost = '';
    const storage = await serve((_req, res) => res.writeHead(307, { location: `http://${registryHost}/v2/a/b/blobs/served` }).end());
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 401, {}, { 'www-authenticate': 'Basic realm="r"' });
      if (req.url === '/v2/a/b/blobs/served') return res.writeHead(200, { 'content-length': '3' }).end('abc');
      res.writeHead(307, { location: `http://${storage.host}/signed` }).end();
    });
    registryHost = host;
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast, credentials: { username: 'u', password: 'p', source: 'test' } }), 'a/b');
    const res = await client.getBlob(`sha256:${'0'.repeat(64)}`);
    expect(await res.body.text()).toBe('abc');
    expect(storage.seen).toEqual([{ method: 'GET', url: '/signed' }]);
    expect(seen.filter((r) => r.url.startsWith('/v2/a/b/')).map((r) => [r.url.split('/').pop(), r.auth?.split(' ')[0]])).toEqual([
      [`sha256:${'0'.repeat(64)}`, 'Basic'],
      ['served', 'Basic'],
    ]);
    expect(res.url.href).toBe(`http://${host}/v2/a/b/blobs/served`);
    await client.http.close();
  });

  it('follows at most 5 redirects of a read, and none of a write', async () => {
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      const hop = Number(new URL(req.url!, 'http://x').searchParams.get('hop') ?? 0);
      res.writeHead(307, { location: `/v2/a/b/manifests/1?hop=${hop + 1}` }).end();
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    await expect(client.getManifest('1')).rejects.toMatchObject({ code: 'REGISTRY', temporary: false, message: expect.stringMatching(/redirected more than 5 times/) });
    expect(seen.filter((r) => r.method === 'GET' && r.url !== '/v2/')).toHaveLength(6);

    await expect(client.putManifest('1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json')).rejects.toMatchObject({
      code: 'REGISTRY',
      message: expect.stringMatching(/push manifest .* answered HTTP 307/),
    });
    expect(seen.filter((r) => r.method === 'PUT')).toHaveLength(1);
    await client.http.close();
  });

  it('leaves a blob cut off mid-body to its reader: no Range request resumes it', async () => {
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      res.writeHead(200, { 'content-length': '10' });
      res.write('abcde', () => res.destroy());
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    const res = await client.getBlob(`sha256:${'0'.repeat(64)}`);
    await expect(res.body.text()).rejects.toThrow();
    expect(seen.filter((r) => r.url !== '/v2/')).toEqual([{ method: 'GET', url: `/v2/a/b/blobs/sha256:${'0'.repeat(64)}` }]);
    await client.http.close();
  });

  it('sends a streamed body once: a temporary failure goes back to the caller, which has the source', async () => {
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'busy' }] });
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    const err = await client.appendUpload({ location: new URL(`http://${host}/v2/a/b/blobs/uploads/1`) }, Readable.from([Buffer.from('data')])).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY', temporary: true, message: expect.not.stringMatching(/tried/) });
    expect(worthRetrying(err)).toBe(true);
    expect(seen.filter((r) => r.method === 'PATCH')).toHaveLength(1);
    await client.http.close();
  });

  it('pings before the first request, and a failing ping is tried as the policy says, not once per request retry', async () => {
    const { host, seen } = await serve((_req, res) => json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'down' }] }));
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    await expect(client.hasBlob(`sha256:${'0'.repeat(64)}`)).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/connect to registry .* answered UNAVAILABLE/) });
    expect(seen.map((r) => r.url)).toEqual(['/v2/', '/v2/', '/v2/']);
    await client.http.close();
  });

  it('stops waiting out a Retry-After when the request is aborted', async () => {
    const aborter = new AbortController();
    const { host, seen } = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, { 'retry-after': '60' });
      setImmediate(() => aborter.abort());
    });
    const client = new RepositoryClient(new RegistryHttp({ host, plainHttp: true, retry: fast }), 'a/b');
    await expect(client.hasBlob(`sha256:${'0'.repeat(64)}`, aborter.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.filter((r) => r.method === 'HEAD')).toHaveLength(1);
    await client.http.close();
  });

  it('refuses a redirect from a TLS registry to plain HTTP before sending anything there', async () => {
    const { refusingPlainHttpRedirects } = await import('../../../src/transport/registry/interceptors/redirect-guard.js');
    const facts = { expect: [200], scopes: [], what: 'pull blob x', replayable: true, origin: 'https://reg.example' };
    const sent: string[] = [];
    const errors: Error[] = [];
    const dispatch = refusingPlainHttpRedirects(new URL('https://reg.example'), 'reg.example')((options) => {
      sent.push(String(options.origin));
      return true;
    });
    const handler = { onResponseError: (_c: unknown, e: Error) => void errors.push(e) };
    dispatch({ origin: 'https://reg.example', path: '/v2/a/blobs/x', method: 'GET', registry: facts }, handler);
    dispatch({ origin: 'https://storage.example', path: '/signed', method: 'GET', registry: facts }, handler);
    dispatch({ origin: 'http://storage.example', path: '/signed', method: 'GET', registry: facts }, handler);
    expect(sent).toEqual(['https://reg.example', 'https://storage.example']);
    expect(errors).toMatchObject([{ code: 'REGISTRY', message: 'pull blob x: registry reg.example redirected to a plain-HTTP URL http://storage.example; refusing' }]);
  });

  it('refuses a plain-HTTP token realm for a TLS registry rather than leak credentials', async () => {
    const { RegistryAuth } = await import('../../../src/transport/registry/auth.js');
    const auth = new RegistryAuth('reg.example', { username: 'u', password: 'p', source: 'test' }, () => Promise.reject(new Error('must not be called')), false);
    auth.learn(parseAuthenticate('Bearer realm="http://evil.example/token",service="s"'));
    await expect(auth.header(['repository:a:pull'])).rejects.toMatchObject({ code: 'REGISTRY', message: expect.stringMatching(/plain-HTTP token realm/) });
  });
});
