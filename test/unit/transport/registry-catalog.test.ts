/**
 * RegistryCatalog, the transport audit and rewrap walk a registry with, against a scripted node:http registry on
 * 127.0.0.1: the catalog's pages and shards, tags, a tag's root read once, and tags moved by PUT of exact bytes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../../src/image/digest.js';
import { RegistryCatalog } from '../../../src/transport/registry/registry-catalog.js';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }));

/** A registry with two catalog pages, one repository's tags and one manifest; returns host:port and the requests seen. */
async function registry(): Promise<{ host: string; seen: string[]; bodies: Buffer[] }> {
  const seen: string[] = [];
  const bodies: Buffer[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url!;
      if (url === '/v2/') return res.writeHead(200).end('{}');
      if (url === '/v2/_catalog?n=1000') {
        return res.writeHead(200, { link: '</v2/_catalog?n=1000&last=team%2Fb>; rel="next"' }).end(JSON.stringify({ repositories: ['team/b', 'other/app'] }));
      }
      if (url.startsWith('/v2/_catalog?')) return res.writeHead(200).end(JSON.stringify({ repositories: ['team/a/deep', 'team/a'] }));
      if (url === '/v2/team/a/tags/list') return res.writeHead(200).end(JSON.stringify({ name: 'team/a', tags: ['2', '1'] }));
      if (req.method === 'GET' && url === '/v2/team/a/manifests/1') {
        return res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
      }
      if (req.method === 'PUT' && url.startsWith('/v2/team/a/manifests/')) {
        bodies.push(Buffer.concat(chunks));
        return res.writeHead(201, { 'docker-content-digest': sha256Digest(Buffer.concat(chunks)) }).end();
      }
      res.writeHead(404).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, bodies };
}

describe('RegistryCatalog', () => {
  it('lists every page of the catalog, sorted, and keeps the shard its globs name', async () => {
    const { host } = await registry();
    const catalog = await RegistryCatalog.open({ domain: host, path: '' }, { insecure: true });
    try {
      expect(await catalog.repositories()).toEqual(['other/app', 'team/a', 'team/a/deep', 'team/b']);
      expect(await catalog.repositories(['team/*'])).toEqual(['team/a', 'team/b']);
      expect(await catalog.repositories(['team/**', 'nothing/*'])).toEqual(['team/a', 'team/a/deep', 'team/b']);
    } finally {
      await catalog.close();
    }
  });

  it("reads a tag's root once, serves the image from it, and moves tags by PUT of the exact bytes", async () => {
    const { host, seen, bodies } = await registry();
    const catalog = await RegistryCatalog.open({ domain: host, path: 'team/a' }, { insecure: true });
    try {
      expect(await catalog.tags('team/a')).toEqual(['2', '1']);
      const root = await catalog.root('team/a', '1');
      expect(root.descriptor.digest).toBe(sha256Digest(MANIFEST));
      const source = catalog.source({ domain: host, path: 'team/a', tag: '1' }, root);
      expect(source.description).toBe(`docker://${host}/team/a:1`);
      expect(await source.readManifest(await source.rootDescriptor())).toEqual(MANIFEST);
      expect(seen.filter((r) => r.startsWith('GET /v2/team/a/manifests/'))).toEqual(['GET /v2/team/a/manifests/1']);

      await catalog.putTag('team/a', '1-moved', { bytes: MANIFEST, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
      expect(seen.at(-1)).toBe('PUT /v2/team/a/manifests/1-moved');
      expect(bodies).toEqual([MANIFEST]);
      // One connection for the run: one ping.
      expect(seen.filter((r) => r === 'GET /v2/')).toHaveLength(1);
    } finally {
      await catalog.close();
    }
  });
});
