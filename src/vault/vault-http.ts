import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { readAll } from '../util/streams.js';

/** What node-vault 0.12 hands its request function (the old `request` library's option names). */
export interface NodeVaultRequestOptions {
  method: string;
  uri: string;
  headers?: Record<string, string>;
  /** The JSON body of a write. */
  json?: unknown;
}

/** What node-vault expects back: it reads the status, the parsed body, and the path (for `sys/health`). */
export interface NodeVaultResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

/** node-vault's `request-promise` option: `defaults(rpDefaults)` returns the function that sends each request. */
export interface NodeVaultTransport {
  defaults(defaults: { strictSSL?: boolean }): (options: NodeVaultRequestOptions) => Promise<NodeVaultResponse>;
  close(): Promise<void>;
}

export interface VaultHttpOptions {
  /** PEM CA bundle for Vault's TLS certificate, in place of the system's. */
  ca?: string;
  timeoutMs: number;
}

/** A standby may redirect to the active node (307, body re-sent); never a long chain. */
const MAX_REDIRECTS = 3;
/** Vault answers are small JSON documents; a huge one is not from Vault. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * node-vault's HTTP transport, replaced by undici. node-vault 0.12 sends with axios, whose follow-redirects prints
 * every request's options, the `X-Vault-Token` header included, to stderr whenever `DEBUG` names it (`DEBUG=*`,
 * `DEBUG=follow-redirects`): a node's decrypt-capable token ended up in the key provider's pod log. undici has no
 * `DEBUG` logging, and its `NODE_DEBUG=undici` lines name only origin, method and path. So no environment setting
 * makes this process print a token, a secret id, a JWT or a layer key it sends to Vault.
 */
export function vaultTransport(options: VaultHttpOptions): NodeVaultTransport {
  let agent: Agent | undefined;
  let dispatcher: Dispatcher | undefined;
  return {
    defaults({ strictSSL }) {
      // node-vault sets strictSSL from VAULT_SKIP_VERIFY, as Vault's own CLI does; keep that meaning.
      agent = new Agent({
        connect: { ...(options.ca !== undefined ? { ca: options.ca } : {}), rejectUnauthorized: strictSSL !== false, timeout: options.timeoutMs },
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
      dispatcher = agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
      return (req) => send(dispatcher!, req);
    },
    async close() {
      await agent?.close();
    },
  };
}

async function send(dispatcher: Dispatcher, req: NodeVaultRequestOptions): Promise<NodeVaultResponse> {
  const url = new URL(req.uri);
  const hasBody = req.json !== undefined && req.json !== null && typeof req.json === 'object';
  const res = await request(url, {
    dispatcher,
    method: req.method as Dispatcher.HttpMethod,
    headers: { ...req.headers, accept: 'application/json', ...(hasBody ? { 'content-type': 'application/json' } : {}) },
    body: hasBody ? JSON.stringify(req.json) : null,
  });
  const text = (await readAll(res.body, MAX_BODY_BYTES, "Vault's answer")).toString('utf8');
  let body: unknown = text;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      // A proxy's HTML error page: node-vault reports the status, and the text is kept as the body.
    }
  } else {
    body = undefined;
  }
  return { statusCode: res.statusCode, body, request: { path: url.pathname } };
}
