import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { loadUndici } from '../../util/load-undici.js';
import { ImagegateError, isImagegateError } from '../../errors.js';
import { DEFAULT_RETRY, retrying, type RetryPolicy } from '../../util/retry.js';
import { RegistryAuth, MAX_TOKEN_BODY_BYTES, type TokenRequest, type TokenResponse } from './auth.js';
import { parseAuthenticate } from './challenge.js';
import type { RegistryCredentials } from './credentials.js';
import { MAX_ERROR_BODY_BYTES, networkError, registryResponseError, type RequestContext } from './registry-error.js';
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

const MAX_REDIRECTS = 5;
const MAX_RETRY_AFTER_MS = 60_000;

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
 * large pushes), authorization from a ping and 401 challenges, retries with backoff for requests whose body can be
 * sent again, redirects followed without carrying credentials to another origin, and registry errors turned into
 * messages that say what to do.
 */
export class RegistryHttp {
  readonly host: string;
  readonly base: URL;
  readonly retry: RetryPolicy;
  private readonly agentOptions: Agent.Options;
  private agentCreated: Promise<Agent> | undefined;
  private readonly auth: RegistryAuth;
  private pinged: Promise<void> | undefined;

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

  /** Sends a request, expecting one of `req.expect`; the caller must consume or dump the body. */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    await this.ping(req.signal);
    const replayable = req.body === undefined || Buffer.isBuffer(req.body);
    const ctx: RequestContext = { method: req.method, what: req.what, host: this.host };
    const retryAfter = new WeakMap<object, number>();
    return retrying(
      async () => {
        let res: RegistryResponse;
        try {
          res = await this.authorized(req, replayable);
        } catch (e) {
          throw req.signal?.aborted === true ? e : networkError(e, ctx);
        }
        if (req.expect.includes(res.status)) return res;
        const wait = headerValue(res.headers, 'retry-after');
        const failure = registryResponseError(res.status, await readCapped(res.body, MAX_ERROR_BODY_BYTES), ctx, wait);
        const ms = parseRetryAfter(wait);
        if (ms !== undefined) retryAfter.set(failure, ms);
        throw failure;
      },
      // A streamed body is gone once sent; the copy driver retries the whole blob instead.
      replayable ? this.retry : { ...this.retry, attempts: 1 },
      { delayFor: (e) => (typeof e === 'object' && e !== null ? retryAfter.get(e) : undefined), signal: req.signal },
    ).catch((e: unknown) => {
      // Tried as often as allowed already: callers must not multiply the retries.
      if (!replayable || !isImagegateError(e) || !e.temporary || this.retry.attempts <= 1) throw e;
      throw new ImagegateError(e.code, `${e.message} (tried ${this.retry.attempts} times)`, { cause: e });
    });
  }

  /** `GET /v2/` once per host: learns how the registry wants to be authenticated, and fails early when it cannot be reached. */
  private ping(signal: AbortSignal | undefined): Promise<void> {
    const ctx: RequestContext = { method: 'GET', what: `connect to registry ${this.host}`, host: this.host };
    this.pinged ??= retrying(
      async () => {
        let res: Dispatcher.ResponseData;
        try {
          res = await (await loadUndici()).request(new URL('/v2/', this.base), { method: 'GET', dispatcher: await this.agent(), signal });
        } catch (e) {
          throw networkError(e, ctx);
        }
        const body = await readCapped(res.body, MAX_ERROR_BODY_BYTES);
        if (res.statusCode === 401) this.auth.learn(parseAuthenticate(headerValue(res.headers, 'www-authenticate') ?? ''));
        else if (res.statusCode !== 200) throw registryResponseError(res.statusCode, body, ctx);
      },
      this.retry,
      { signal },
    );
    // A failed ping is tried again by the next request rather than remembered forever.
    this.pinged.catch(() => (this.pinged = undefined));
    return this.pinged;
  }

  /** One try: with authorization, re-authorizing once on a 401 challenge when the body can be sent again. */
  private async authorized(req: RegistryRequest, replayable: boolean): Promise<RegistryResponse> {
    let scopes = req.scopes;
    let authorization = await this.auth.header(scopes);
    let res = await this.follow(req, authorization);
    if (res.status !== 401 || !replayable) return res;
    const challenge = headerValue(res.headers, 'www-authenticate');
    if (challenge === undefined) return res;
    const next = this.auth.rechallenged(parseAuthenticate(challenge), scopes, authorization !== undefined);
    if (!next.retry) return res;
    await res.body.dump();
    scopes = next.scopes;
    authorization = await this.auth.header(scopes);
    res = await this.follow(req, authorization);
    return res;
  }

  /** Sends, following redirects for reads; Authorization goes only to the registry's own origin. */
  private async follow(req: RegistryRequest, authorization: string | undefined): Promise<RegistryResponse> {
    let url = new URL(req.url, this.base);
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      if (authorization !== undefined && url.origin === this.base.origin) headers.authorization = authorization;
      const res = await (await loadUndici()).request(url, { method: req.method, headers, body: req.body ?? null, dispatcher: await this.agent(), signal: req.signal });
      const location = headerValue(res.headers, 'location');
      const redirect = [301, 302, 303, 307, 308].includes(res.statusCode) && location !== undefined;
      if (!redirect || (req.method !== 'GET' && req.method !== 'HEAD')) return { status: res.statusCode, headers: res.headers, body: res.body, url };
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new ImagegateError('REGISTRY', `${req.what}: registry ${this.host} redirected more than ${MAX_REDIRECTS} times`);
      url = new URL(location, url);
      if (url.protocol !== 'https:' && url.protocol !== this.base.protocol) {
        throw new ImagegateError('REGISTRY', `${req.what}: registry ${this.host} redirected to a plain-HTTP URL ${url.origin}; refusing`);
      }
    }
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

/** A header's single value (the first, when a server repeats it). */
export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads at most `limit` bytes of a body as text and discards the rest, so the connection can be reused. */
export async function readCapped(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size < limit) chunks.push(chunk.subarray(0, limit - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined;
}
