/**
 * A plain-HTTP proxy on 127.0.0.1 in front of a test registry (or OpenBao) that records every request (method and
 * path) and every TCP connection made to it: how tests and benchmarks count what a command asked of a registry
 * (docker-registry's own access log is off in tests). The caller closes it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

export interface CountingProxy {
  /** host:port to use instead of the registry's. */
  host: string;
  /** `GET /v2/team/app/manifests/1`, in order. */
  requests: string[];
  connections: number;
  reset(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/** An answer the proxy gives itself instead of forwarding, e.g. a registry refusing to move an immutable tag. */
export type ProxyAnswer = (method: string, url: string) => { status: number; body: string } | undefined;

export async function startCountingProxy(upstream: string, answer: ProxyAnswer = () => undefined): Promise<CountingProxy> {
  const state = { requests: [] as string[], connections: 0 };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    const own = answer(req.method ?? 'GET', req.url ?? '/');
    if (own !== undefined) {
      req.resume();
      res.writeHead(own.status, { 'content-type': 'application/json' });
      res.end(own.body);
      return;
    }
    // Every header but the hop-by-hop ones (a Vault token, a registry's Authorization) goes on unchanged.
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k))) as Record<string, string>;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    request(`${upstream}${req.url}`, { method: req.method as 'GET', headers, body: hasBody ? req : null })
      .then(async (up) => {
        const out = Object.fromEntries(Object.entries(up.headers).filter(([k]) => k !== 'transfer-encoding' && k !== 'connection'));
        // The registry's Location headers name itself; the client must come back through the proxy.
        if (typeof out.location === 'string') out.location = out.location.replace(upstream, `http://${host}`);
        res.writeHead(up.statusCode, out);
        res.end(Buffer.from(await up.body.arrayBuffer()));
      })
      .catch(() => res.destroy());
  });
  server.on('connection', () => state.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    get requests() {
      return state.requests;
    },
    get connections() {
      return state.connections;
    },
    reset() {
      state.requests = [];
      state.connections = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
