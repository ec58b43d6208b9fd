/**
 * The registry test infrastructure itself (test/support/registry-server.ts): real Debian docker-registry 2.8.2
 * servers, plain, TLS + htpasswd, and TLS + token auth through the in-process token server, plus kill/restart.
 *
 * undici's own `fetch` is used, not Node's global one: Node 24's bundled undici (7.x) rejects a dispatcher from the
 * undici 8 package ("invalid onRequestStart method").
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, fetch, type RequestInit, type Response } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RegistryServer } from '../support/registry-server.js';
import { requireTool } from '../support/tools.js';

const registryBin = requireTool('docker-registry');
const opensslBin = requireTool('openssl');
const htpasswdBin = requireTool('htpasswd');

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters (enough for the registry's own challenges). */
function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } {
  const match = /^(\w+)\s+(.*)$/.exec(header ?? '');
  if (!match) throw new Error(`no challenge in ${JSON.stringify(header)}`);
  const params: Record<string, string> = {};
  for (const m of match[2]!.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme: match[1]!, params };
}

/** Reads a response to its end (so its connection can be reused), returning the text. */
function drain(res: Response): Promise<string> {
  return res.text();
}

/** A registry for one describe block, started in beforeAll and stopped in afterAll, and a client trusting its CA. */
function useRegistry(options: Parameters<typeof startRegistry>[0]) {
  let reg: RegistryServer | undefined;
  let agent: Agent | undefined;
  beforeAll(async () => {
    reg = await startRegistry(options);
    if (reg?.caFile) agent = new Agent({ connect: { ca: await readFile(reg.caFile, 'utf8') } });
  });
  afterAll(async () => {
    await agent?.close();
    await reg?.stop();
  });
  return {
    get reg(): RegistryServer {
      return reg!;
    },
    /** fetch `target` (a path on the registry, or an absolute URL) through the agent that trusts the CA */
    call(target: string | URL, init: RequestInit = {}): Promise<Response> {
      return fetch(new URL(target, reg!.url), { ...init, dispatcher: agent });
    },
  };
}

describe.skipIf(!registryBin)('registry test server', () => {
  describe('plain http', () => {
    const r = useRegistry({});

    it('answers GET /v2/ with 200 on a loopback port', async () => {
      expect(r.reg.url).toBe(`http://${r.reg.host}`);
      expect(r.reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
      const res = await r.call('/v2/');
      expect(res.status, r.reg.log()).toBe(200);
      expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect(await res.json()).toEqual({});
      expect(r.reg.caFile).toBeUndefined();
      expect(r.reg.username).toBeUndefined();
    });
  });

  describe.skipIf(!opensslBin || !htpasswdBin)('tls + htpasswd', () => {
    const r = useRegistry({ tls: true, htpasswd: true });

    it('serves https with a certificate from its CA, and certDir holds that CA as ca.crt', async () => {
      expect(r.reg.url).toBe(`https://${r.reg.host}`);
      const ca = await readFile(r.reg.caFile!, 'utf8');
      expect(await readFile(path.join(r.reg.certDir!, 'ca.crt'), 'utf8')).toBe(ca);
      // Without the CA the certificate is not trusted.
      await expect(fetch(`${r.reg.url}/v2/`)).rejects.toThrow();
    });

    it('asks for Basic credentials, rejects wrong ones and accepts the generated ones', async () => {
      const anon = await r.call('/v2/');
      expect(anon.status, r.reg.log()).toBe(401);
      expect(anon.headers.get('www-authenticate')).toMatch(/^Basic realm="imagegate-test"/);
      await drain(anon);

      expect(r.reg.username).toBe('imagegate');
      const wrong = await r.call('/v2/', { headers: { authorization: basic(r.reg.username!, 'nope') } });
      expect(wrong.status).toBe(401);
      await drain(wrong);

      const ok = await r.call('/v2/', { headers: { authorization: basic(r.reg.username!, r.reg.password!) } });
      expect(ok.status, r.reg.log()).toBe(200);
      await drain(ok);
    });
  });

  describe.skipIf(!opensslBin)('tls + token auth, kill and restart', () => {
    const r = useRegistry({ tls: true, tokenAuth: true });
    const repo = 'smoke/blobs';
    const blob = Buffer.from('imagegate registry-server smoke blob\n');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const uploads = `/v2/${repo}/blobs/uploads/`;

    function userAuth(): string {
      return basic(r.reg.username!, r.reg.password!);
    }

    function askToken(realm: string, service: string, scope: string | undefined, auth?: string): Promise<Response> {
      const url = new URL(realm);
      url.searchParams.set('service', service);
      if (scope !== undefined) url.searchParams.set('scope', scope);
      return r.call(url, { headers: auth ? { authorization: auth } : {} });
    }

    /** A token for `scope` from the token server, with the user's credentials or anonymously. */
    async function bearer(scope: string, authenticated = true): Promise<{ authorization: string }> {
      const res = await askToken(r.reg.tokenRealm!, r.reg.tokenService!, scope, authenticated ? userAuth() : undefined);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
      expect(body.access_token).toBe(body.token);
      expect(body.expires_in).toBe(300);
      return { authorization: `Bearer ${body.token}` };
    }

    it('challenges with Bearer, and a token fetched from the realm with credentials opens /v2/', async () => {
      const anon = await r.call('/v2/');
      expect(anon.status, r.reg.log()).toBe(401);
      const challenge = parseChallenge(anon.headers.get('www-authenticate'));
      await drain(anon);
      expect(challenge.scheme).toBe('Bearer');
      expect(challenge.params.realm).toBe(r.reg.tokenRealm);
      expect(challenge.params.service).toBe(r.reg.tokenService);

      const before = r.reg.tokenRequests.length;
      const res = await askToken(challenge.params.realm!, challenge.params.service!, undefined, userAuth());
      expect(res.status).toBe(200);
      const { token } = (await res.json()) as { token: string };
      const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
      expect(header).toMatchObject({ alg: 'ES256', x5c: [expect.any(String)] });
      expect(r.reg.tokenRequests.slice(before)).toEqual([{ scope: [], authenticated: true, status: 200 }]);

      const ok = await r.call('/v2/', { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status, r.reg.log()).toBe(200);
      await drain(ok);
    });

    it('refuses wrong credentials at the token server', async () => {
      const scope = `repository:${repo}:pull`;
      const res = await askToken(r.reg.tokenRealm!, r.reg.tokenService!, scope, basic(r.reg.username!, 'wrong'));
      expect(res.status).toBe(401);
      await drain(res);
      expect(r.reg.tokenRequests.at(-1)).toEqual({ scope: [scope], authenticated: true, status: 401 });
    });

    it('pushes a blob with a push-scoped token; an anonymous token is pull-only', async () => {
      const pushScope = `repository:${repo}:pull,push`;
      // The registry names the scope it wants in its challenge.
      const probe = await r.call(uploads, { method: 'POST' });
      expect(probe.status).toBe(401);
      // The order of the actions follows a Go map iteration in docker-registry, so it varies from run to run.
      const [type, name, actions] = (parseChallenge(probe.headers.get('www-authenticate')).params.scope ?? '').split(':');
      expect([type, name, actions?.split(',').sort().join(',')]).toEqual(['repository', repo, 'pull,push']);
      await drain(probe);

      const anonymous = await bearer(pushScope, false);
      expect(r.reg.tokenRequests.at(-1)).toEqual({ scope: [pushScope], authenticated: false, status: 200 });
      const denied = await r.call(uploads, { method: 'POST', headers: anonymous });
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      await drain(denied);

      const push = await bearer(pushScope);
      const started = await r.call(uploads, { method: 'POST', headers: push });
      expect(started.status, r.reg.log()).toBe(202);
      await drain(started);
      const location = new URL(started.headers.get('location')!, new URL(uploads, r.reg.url));
      location.searchParams.set('digest', digest);
      const put = await r.call(location, {
        method: 'PUT',
        headers: { ...push, 'content-type': 'application/octet-stream' },
        body: blob,
      });
      expect(put.status, `${await drain(put)}\n${r.reg.log()}`).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(digest);

      const head = await r.call(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: push });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(blob.length));
    });

    it('keeps its data and port across kill() and restart()', async () => {
      const pull = await bearer(`repository:${repo}:pull`);
      const headBlob = () => r.call(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: pull });
      const host = r.reg.host;

      await r.reg.kill();
      await expect(headBlob()).rejects.toThrow();

      await r.reg.restart();
      expect(r.reg.host).toBe(host);
      const head = await headBlob();
      expect(head.status, r.reg.log()).toBe(200);
      expect(head.headers.get('docker-content-digest')).toBe(digest);
    });
  });
});
