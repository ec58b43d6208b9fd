import { ImagegateError, systemErrorCode, type ErrorCode } from '../../errors.js';

/** What a request was doing, for messages: `push blob sha256:… to 127.0.0.1:5000/app`. */
export interface RequestContext {
  method: string;
  what: string;
  host: string;
}

/** One entry of the Distribution API's error body `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryDiagnostic {
  code: string;
  message?: string;
  detail?: unknown;
}

/** Error bodies are read for their message only; a huge body is a broken server, not more information. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Registry error codes after which the same request may succeed (go-containerregistry's `Temporary()`). */
const TEMPORARY_CODES = new Set(['BLOB_UPLOAD_INVALID', 'TOOMANYREQUESTS', 'UNKNOWN', 'UNAVAILABLE']);
const TEMPORARY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

function parseDiagnostics(body: string): RegistryDiagnostic[] {
  try {
    const json: unknown = JSON.parse(body);
    if (typeof json !== 'object' || json === null || !Array.isArray((json as { errors?: unknown }).errors)) return [];
    return ((json as { errors: unknown[] }).errors)
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => ({ code: e.code as string, message: typeof e.message === 'string' ? e.message : undefined, detail: e.detail }));
  } catch {
    return [];
  }
}

/**
 * Turns a registry's refusal into an error that names the request, the registry's own code and message, and what
 * to do about it. `body` is the (capped) response body; HEAD responses have none, so only the status speaks.
 */
export function registryResponseError(status: number, body: string, ctx: RequestContext, retryAfter?: string): ImagegateError {
  const diagnostics = parseDiagnostics(body);
  const said = diagnostics.length > 0
    ? diagnostics.map((d) => `${d.code}${d.message !== undefined ? `: ${d.message}` : ''}${describeDetail(d.detail)}`).join('; ')
    : ctx.method === 'HEAD' || body.trim() === '' ? `HTTP ${status}` : `HTTP ${status}: ${body.trim().slice(0, 200)}`;
  const codes = new Set(diagnostics.map((d) => d.code));
  const temporary = TEMPORARY_STATUSES.has(status) || [...codes].some((c) => TEMPORARY_CODES.has(c));
  const where = `${ctx.what}: registry ${ctx.host} answered ${said}`;
  let code: ErrorCode = 'REGISTRY';
  let hint = '';
  if (status === 401 || codes.has('UNAUTHORIZED')) {
    code = 'AUTH';
    // Credentials we sent and the registry refused are reported by the authorization interceptor (auth.ts `refused`).
    hint = `; log in with \`docker login ${ctx.host}\`, or pass --creds USER (the password is asked for, or read with --creds-stdin)`;
  } else if (status === 403 || codes.has('DENIED')) {
    code = 'AUTH';
    hint = '; the credentials are valid but lack permission for this repository';
  } else if (codes.has('NAME_UNKNOWN')) {
    code = 'NOT_FOUND';
    hint = '; check the repository name';
  } else if (codes.has('MANIFEST_UNKNOWN')) {
    code = 'NOT_FOUND';
    hint = '; check the repository name and tag';
  } else if (codes.has('BLOB_UNKNOWN') || (status === 404 && ctx.method === 'HEAD')) {
    code = 'NOT_FOUND';
  } else if (status === 429) {
    hint = retryAfter !== undefined ? `; rate limited, retry after ${retryAfter}` : '; rate limited';
  } else if (temporary) {
    hint = '; the registry is failing, try again later';
  }
  return new ImagegateError(code, `${where}${hint}`, { temporary });
}

function describeDetail(detail: unknown): string {
  if (detail === undefined || detail === null) return '';
  if (typeof detail === 'string') return ` (${detail})`;
  const text = JSON.stringify(detail);
  return text.length <= 200 ? ` (${text})` : '';
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);
const TEMPORARY_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Turns a failure below HTTP (connection, TLS, DNS) into an error that says which registry and what to check. */
export function networkError(e: unknown, ctx: RequestContext): ImagegateError {
  if (e instanceof ImagegateError) return e;
  const sys = systemErrorCode(e) ?? systemErrorCode((e as { cause?: unknown })?.cause);
  const detail = e instanceof Error ? e.message : String(e);
  if (sys !== undefined && TLS_TRUST_CODES.has(sys)) {
    return new ImagegateError(
      'REGISTRY',
      `${ctx.what}: the TLS certificate of ${ctx.host} is not trusted (${sys}: ${detail}); pass --ca-cert FILE with the CA that signed it`,
      { cause: e },
    );
  }
  if (sys === 'EPROTO' || /wrong version number|packet length too long/i.test(detail)) {
    return new ImagegateError(
      'REGISTRY',
      `${ctx.what}: ${ctx.host} does not speak TLS (${detail}); if it is a plain-HTTP registry on this machine, pass --insecure`,
      { cause: e },
    );
  }
  if (sys === 'ENOTFOUND') {
    return new ImagegateError('REGISTRY', `${ctx.what}: registry host ${ctx.host} is unknown (${detail}); check the image reference`, { cause: e });
  }
  const temporary = sys === undefined || TEMPORARY_NETWORK_CODES.has(sys);
  return new ImagegateError(
    'REGISTRY',
    `${ctx.what}: cannot reach registry ${ctx.host} (${sys ?? 'connection failed'}: ${detail}); check that it is running and reachable`,
    { cause: e, temporary },
  );
}
