import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { loadUndici } from '../../util/load-undici.js';
import { DEFAULT_RETRY, retrying, type RetryPolicy } from '../../util/retry.js';
import { RegistryAuth, MAX_TOKEN_BODY_BYTES, type TokenRequest, type TokenResponse } from './auth.js';
import type { RegistryCredentials } from './credentials.js';
import { authorizing } from './interceptors/authorization.js';
import { pingingFirst } from './interceptors/ping.js';
import { MAX_REDIRECTS, refusingPlainHttpRedirects } from './interceptors/redirect-guard.js';
import { registryErrors } from './interceptors/registry-errors.js';
import { composable, type RegistryDispatchOptions, type RegistryRequestFacts } from './interceptors/registry-request.js';
import { registryRetryOptions } from './interceptors/retry-policy.js';
import { networkError, registryResponseError, type RequestContext } from './registry-error.js';
import { readCapped } from './response.js';
import { trustedContext } from './trust.js';

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  method: HttpMethod;
  /** A path under the registry (`/v2/…`) or an absolute URL (an upload Location). */
  url: string | URL;
  headers?: Record<string, string>;
  /** A Buffer can be sent again on a retry; a stream cannot, so a streamed request is tried once. */
  body?: Buffer | Readable;
  /** Statuses that count as success; any other becomes an error. */
  expect: number[];
  /** Token scopes the request needs, e.g. `repository:team/app:pull`. */
  scopes: string[];
  /** What the request does, for messages: `pull manifest team/app:1.0`. */
  what: string;
  signal?: AbortSignal;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** Where the response came from, after redirects; relative Locations resolve against it. */
  url: URL;
}

export interface RegistryHostOptions {
  /** host[:port] to connect to (docker.io is already mapped to its API host). */
  host: string;
  /** Plain HTTP; only ever set for loopback hosts when the user asked (--insecure). */
  plainHttp: boolean;
  /** PEM CA bundle trusted in addition to the system's. */
  ca?: string;
  credentials?: RegistryCredentials;
  /** Connections per origin; several layers move at once. */
  connections?: number;
  retry?: RetryPolicy;
}

/**
 * HTTP to one registry host: one undici connection pool (HTTP/1.1: HTTP/2's default flow-control windows throttle
 * large pushes) with the registry's request chain composed around it as interceptors, outermost first:
 *
 * 1. `pingingFirst`: `GET /v2/` once, to learn how the registry authenticates and fail early when it is unreachable;
 * 2. undici's `retry`, deciding by `registryRetryOptions`: temporary failures again, with backoff or Retry-After,
 *    when the body can be sent again;
 * 3. `registryErrors`: a status the request does not expect, or a failure before any response, becomes an
 *    ImagegateError that says what to do (and whether it is temporary);
 * 4. undici's `redirect`, for reads only, stripping Authorization from a hop to another origin;
 * 5. `refusingPlainHttpRedirects`: no hop from TLS to plain HTTP;
 * 6. `authorizing`: the registry's authorization on requests to its own origin, and one more try on a 401 challenge.
 */
export class RegistryHttp {
  readonly host: string;
  readonly base: URL;
  readonly retry: RetryPolicy;
  private readonly agentOptions: Agent.Options;
  private agentCreated: Promise<Agent> | undefined;
  private chain: Promise<Dispatcher> | undefined;
  private readonly auth: RegistryAuth;

  constructor(options: RegistryHostOptions) {
    this.host = options.host;
    this.base = new URL(`${options.plainHttp ? 'http' : 'https'}://${options.host}`);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.agentOptions = {
      connections: options.connections ?? 8,
      connect: { secureContext: trustedContext(options.ca) },
      headersTimeout: 120_000,
      bodyTimeout: 300_000,
    };
    this.auth = new RegistryAuth(options.host, options.credentials, (r) => this.fetchToken(r), options.plainHttp);
  }

  async close(): Promise<void> {
    if (this.agentCreated !== undefined) await (await this.agentCreated).close();
  }

  /** This host's connection pool, made on the first request (undici itself is loaded only by commands that use HTTP). */
  private agent(): Promise<Agent> {
    return (this.agentCreated ??= loadUndici().then(({ Agent }) => new Agent(this.agentOptions)));
  }

  /** The pool with the request chain around it (see the class comment; `compose` takes the innermost first). */
  private dispatcher(): Promise<Dispatcher> {
    return (this.chain ??= Promise.all([loadUndici(), this.agent()]).then(([{ interceptors }, agent]) =>
      agent.compose(
        composable(authorizing(this.auth, this.base.origin)),
        composable(refusingPlainHttpRedirects(this.base, this.host)),
        interceptors.redirect({ maxRedirections: MAX_REDIRECTS, throwOnMaxRedirect: true }),
        composable(registryErrors(this.host)),
        interceptors.retry(registryRetryOptions(this.retry)),
        composable(pingingFirst({ agent, base: this.base, host: this.host, auth: this.auth, retry: this.retry })),
      ),
    ));
  }

  /** Sends a request, expecting one of `req.expect`; the caller must consume or dump the body. */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const url = new URL(req.url, this.base);
    const registry: RegistryRequestFacts = {
      expect: req.expect,
      scopes: req.scopes,
      what: req.what,
      // A streamed body is gone once sent; the copy driver retries the whole blob instead.
      replayable: req.body === undefined || Buffer.isBuffer(req.body),
      origin: url.origin,
    };
    const { request } = await loadUndici();
    const options: Omit<RegistryDispatchOptions, 'origin' | 'path'> & { dispatcher: Dispatcher; maxRedirections?: number } = {
      method: req.method,
      headers: req.headers ?? {},
      body: req.body ?? null,
      ...(req.signal !== undefined ? { signal: req.signal } : {}),
      dispatcher: await this.dispatcher(),
      // Only reads follow redirects: a write answered with one fails as the registry's refusal.
      ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { maxRedirections: 0 }),
      registry,
    };
    // undici's request() hands its options to the dispatcher whole, `registry` and `maxRedirections` included.
    const res = await request(url, options as Parameters<typeof request>[1]);
    return { status: res.statusCode, headers: res.headers, body: res.body, url: lastUrl(res.context) ?? url };
  }

  private fetchToken(r: TokenRequest): Promise<TokenResponse> {
    const ctx: RequestContext = { method: r.method, what: `get a token for registry ${this.host}`, host: r.url.host };
    return retrying(async () => {
      let res: Dispatcher.ResponseData;
      try {
        res = await (await loadUndici()).request(r.url, { method: r.method, headers: r.headers, body: r.form ?? null, dispatcher: await this.agent() });
      } catch (e) {
        throw networkError(e, ctx);
      }
      const body = await readCapped(res.body, MAX_TOKEN_BODY_BYTES);
      if (res.statusCode >= 500) throw registryResponseError(res.statusCode, body, ctx);
      return { status: res.statusCode, body };
    }, this.retry);
  }
}

/** Where a response came from after redirects: undici's redirect interceptor lists every URL it asked. */
function lastUrl(context: object | undefined): URL | undefined {
  const history = (context as { history?: unknown } | undefined)?.history;
  return Array.isArray(history) && history.at(-1) instanceof URL ? (history.at(-1) as URL) : undefined;
}
