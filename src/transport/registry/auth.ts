import { ImagegateError } from '../../errors.js';
import type { AuthChallenge } from './challenge.js';
import type { RegistryCredentials } from './credentials.js';

/** Token responses are small JSON documents; anything bigger is refused unread (go-containerregistry does the same). */
export const MAX_TOKEN_BODY_BYTES = 64 * 1024;
/** The token spec's default lifetime when the server does not say. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew a little before expiry so a token does not run out between being chosen and being checked. */
const EXPIRY_MARGIN_MS = 10_000;
/**
 * How long a refusal of our credentials is remembered: long enough that the layers of one copy do not each ask
 * again, short enough that a long-lived connection (the webhook's) recovers from a registry's passing 401.
 */
const REFUSAL_MEMORY_MS = 30_000;

/** How the auth layer asks a token server for a token; supplied by the HTTP layer so both share one connection pool. */
export type TokenFetcher = (request: TokenRequest) => Promise<TokenResponse>;

export interface TokenRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  /** Form-encoded body for the OAuth2 POST flow. */
  form?: string;
}

export interface TokenResponse {
  status: number;
  body: string;
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

/**
 * Authorization for one registry host: anonymous, Basic, or Bearer tokens obtained from the realm the registry's
 * challenge names (docker token spec). Tokens are cached per set of scopes until shortly before they expire.
 * Credentials are only ever sent to the registry host itself and to the token realm it named.
 */
export class RegistryAuth {
  private challenge: AuthChallenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  /** One token request per scope set at a time, however many layers ask at once. */
  private readonly pending = new Map<string, Promise<CachedToken>>();
  /** Scope sets a registry asked to widen (insufficient_scope); later requests for the same set ask for the wider one. */
  private readonly widened = new Map<string, string[]>();
  /**
   * Set when the registry or its token server refused our credentials: later requests fail with this same error at
   * once, instead of each layer asking again and reporting the refusal again.
   */
  private refusal: { error: ImagegateError; at: number } | undefined;

  constructor(
    private readonly host: string,
    private readonly credentials: RegistryCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
    /** Whether the registry itself is reached over plain HTTP; only then may its realm be plain HTTP. */
    private readonly plainHttp: boolean,
  ) {}

  get scheme(): string | undefined {
    return this.challenge?.scheme;
  }

  /** Remembers how the registry wants to be authenticated (from the ping or a 401). */
  learn(challenges: AuthChallenge[]): boolean {
    const usable = challenges.find((c) => c.scheme === 'bearer' || c.scheme === 'basic');
    if (usable === undefined) return false;
    this.challenge = usable;
    return true;
  }

  /** The Authorization header value for a request needing `scopes`, or undefined to go anonymous. */
  async header(scopes: string[]): Promise<string | undefined> {
    if (this.refusal !== undefined && Date.now() - this.refusal.at < REFUSAL_MEMORY_MS) throw this.refusal.error;
    const c = this.challenge;
    if (c === undefined) return undefined;
    if (c.scheme === 'basic') return this.basic();
    if (this.credentials?.registryToken !== undefined) return `Bearer ${this.credentials.registryToken}`;
    scopes = this.widened.get(scopeKey(scopes)) ?? scopes;
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached !== undefined && cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return `Bearer ${cached.value}`;
    let inflight = this.pending.get(key);
    if (inflight === undefined) {
      inflight = this.requestToken(c, scopes).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const token = await inflight;
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  /**
   * Called on a 401. Returns true when a retry with fresh authorization can help: the token expired or lacked a
   * scope the new challenge names. False when the credentials themselves were refused.
   */
  rechallenged(challenges: AuthChallenge[], scopes: string[], sentAuthorization: boolean): { retry: boolean; scopes: string[] } {
    const before = this.challenge;
    if (!this.learn(challenges)) return { retry: false, scopes };
    const now = this.challenge!;
    if (now.scheme === 'basic') {
      if (sentAuthorization && this.credentials?.username !== undefined) throw this.refused(`registry ${this.host}`, 401);
      return { retry: !sentAuthorization && this.credentials !== undefined, scopes };
    }
    const merged = mergeScopes(now, this.widened.get(scopeKey(scopes)) ?? scopes);
    if (merged.length > scopes.length) this.widened.set(scopeKey(scopes), merged);
    if (before === undefined || before.scheme !== 'bearer' || !sentAuthorization) return { retry: true, scopes: merged };
    // A Bearer request that was refused: drop the token and try once with the scopes the registry asked for.
    this.tokens.delete(scopeKey(scopes));
    const err = now.params.error;
    return { retry: err === 'insufficient_scope' || err === 'invalid_token', scopes: merged };
  }

  /**
   * The error for credentials `who` (the registry, or its token server) refused: it says they were refused, names
   * their source and user (never the password) and what to check. Requests refused together share one error.
   */
  private refused(who: string, status: number): ImagegateError {
    const now = Date.now();
    if (this.refusal !== undefined && now - this.refusal.at < REFUSAL_MEMORY_MS) return this.refusal.error;
    const c = this.credentials;
    const user = c?.username !== undefined ? ` (user ${JSON.stringify(c.username)})` : '';
    // A password given on the command line is fixed there; one from a file is renewed by logging in again.
    const relogin = c?.source === '--creds' ? '' : `, or log in again with \`docker login ${this.host}\``;
    const error = new ImagegateError('AUTH', `${who} refused the credentials from ${c?.source ?? 'the configuration'}${user} (HTTP ${status}); check the user and password${relogin}`);
    this.refusal = { error, at: now };
    return error;
  }

  private basic(): string | undefined {
    const c = this.credentials;
    if (c?.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
  }

  private async requestToken(c: AuthChallenge, scopes: string[]): Promise<CachedToken> {
    const realm = this.realmUrl(c);
    const service = c.params.service;
    const identityToken = this.credentials?.identityToken;
    if (identityToken !== undefined) {
      // OAuth2 refresh-token grant (docker oauth.md); servers without it answer 404 and want the GET flow.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: identityToken, client_id: 'imagegate' });
      if (service !== undefined) form.set('service', service);
      form.set('scope', scopes.join(' '));
      const res = await this.fetchToken({ method: 'POST', url: realm, headers: { 'content-type': 'application/x-www-form-urlencoded' }, form: form.toString() });
      if (res.status !== 404) return this.parseToken(res, realm);
    }
    const url = new URL(realm);
    if (service !== undefined) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    const basic = this.basic();
    if (basic !== undefined) headers.authorization = basic;
    return this.parseToken(await this.fetchToken({ method: 'GET', url, headers }), realm);
  }

  private realmUrl(c: AuthChallenge): URL {
    const realm = c.params.realm;
    let url: URL | undefined;
    try {
      url = realm !== undefined ? new URL(realm) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new ImagegateError('REGISTRY', `registry ${this.host} asked for a Bearer token but named no usable token realm (${JSON.stringify(realm)})`);
    }
    if (url.protocol === 'http:' && !this.plainHttp) {
      // Credentials would travel in clear text to a server the registry named.
      throw new ImagegateError('REGISTRY', `registry ${this.host} names a plain-HTTP token realm ${url.origin}; refusing to send credentials without TLS`);
    }
    return url;
  }

  private parseToken(res: TokenResponse, realm: URL): CachedToken {
    if (res.status === 401 || res.status === 403) {
      if (this.credentials !== undefined) throw this.refused(`token server ${realm.origin} for registry ${this.host}`, res.status);
      throw new ImagegateError(
        'AUTH',
        `token server ${realm.origin} refused anonymous access for registry ${this.host} (HTTP ${res.status}); log in with \`docker login ${this.host}\`, or pass --creds USER (the password is asked for)`,
      );
    }
    if (res.status !== 200) {
      throw new ImagegateError('REGISTRY', `token server ${realm.origin} for registry ${this.host} answered HTTP ${res.status}`, { temporary: res.status >= 500 });
    }
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      json = JSON.parse(res.body) as typeof json;
    } catch {
      throw new ImagegateError('REGISTRY', `token server ${realm.origin} answered with something that is not JSON`);
    }
    const value = typeof json.token === 'string' && json.token !== '' ? json.token : json.access_token;
    if (typeof value !== 'string' || value === '') throw new ImagegateError('REGISTRY', `token server ${realm.origin} answered without a token`);
    const seconds = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_SECONDS;
    return { value, expiresAt: Date.now() + Math.max(seconds, DEFAULT_TOKEN_SECONDS) * 1000 };
  }
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}

/** The request's scopes plus the one the challenge names, the challenge's first (some registries read only the first). */
function mergeScopes(c: AuthChallenge, scopes: string[]): string[] {
  const asked = c.params.scope;
  if (asked === undefined || asked === '') return scopes;
  const extra = asked.split(' ').filter((s) => s !== '' && !scopes.includes(s));
  return [...extra, ...scopes];
}
