import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { vaultSettingsFromEnv } from '../../../src/vault/settings.js';

let server: http.Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A stand-in for GitHub's runtime token endpoint answering `status` with `body`. */
async function tokenEndpoint(status: number, body: string): Promise<string> {
  server = http.createServer((_req, res) => res.writeHead(status).end(body));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/token?api-version=2.0`;
}

async function githubJwt(url: string): Promise<string> {
  const settings = await vaultSettingsFromEnv({
    VAULT_ADDR: 'https://vault.example:8200',
    IMAGEGATE_VAULT_AUTH: 'jwt',
    IMAGEGATE_VAULT_ROLE: 'ci',
    ACTIONS_ID_TOKEN_REQUEST_URL: url,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'bearer-of-this-job',
  });
  if (settings.auth.method !== 'jwt') throw new Error('expected jwt auth');
  return settings.auth.jwt();
}

describe('GitHub Actions ID token', () => {
  it('is the value the runtime endpoint returns', async () => {
    expect(await githubJwt(await tokenEndpoint(200, JSON.stringify({ value: 'a.b.c' })))).toBe('a.b.c');
  });

  it('a refusal with an empty or non-JSON body names the status and the missing permission, not a JSON error', async () => {
    await expect(githubJwt(await tokenEndpoint(403, ''))).rejects.toThrow(/GitHub Actions refused an ID token \(HTTP 403\); the workflow needs "permissions: id-token: write"/);
    server!.close();
    server = undefined;
    await expect(githubJwt(await tokenEndpoint(500, '<html>oops</html>'))).rejects.toThrow(/HTTP 500/);
  });
});
