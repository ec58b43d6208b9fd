import { ImagegateError, systemErrorCode } from '../../../errors.js';
import { MAX_ERROR_BODY_BYTES, networkError, registryResponseError, type RequestContext } from '../registry-error.js';
import { headerValue } from '../response.js';
import { MAX_REDIRECTS } from './redirect-guard.js';
import { ForwardingHandler, type DispatchController, type DispatchHandler, type RegistryInterceptor, type RegistryRequestFacts } from './registry-request.js';

/** The longest wait a registry's Retry-After may impose on one try. */
const MAX_RETRY_AFTER_MS = 60_000;

/** Waits registries asked for (Retry-After) with the errors that carried them, for the retry policy. */
const requestedDelays = new WeakMap<object, number>();

/** The wait, in milliseconds, that the response behind `error` asked for before another try (Retry-After). */
export function requestedDelay(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? requestedDelays.get(error) : undefined;
}

/**
 * Turns what goes wrong with a registry request into an ImagegateError that says what to do: a status outside the
 * request's `expect` (its error body read, capped, for the registry's own code and message), and a failure before
 * any response (connection, TLS, DNS, too many redirects). Sits above the redirect interceptor, so it judges the
 * final response, and below the retry interceptor, which decides on the error's `temporary` flag. A failure once
 * the body streams passes on as it is: the body's reader reports it (a blob's reader reads the blob again).
 */
export function registryErrors(host: string): RegistryInterceptor {
  return (dispatch) => (options, handler) => {
    const facts = options.registry;
    if (facts === undefined) return dispatch(options, handler);
    const ctx: RequestContext = { method: options.method, what: facts.what, host };
    return dispatch(options, new RegistryErrorHandler(handler, facts, ctx, options.signal ?? undefined));
  };
}

class RegistryErrorHandler extends ForwardingHandler {
  /** A response outside `expect`, whose body is being read for the error message. */
  private refused: { status: number; retryAfter: string | undefined; chunks: Buffer[]; size: number } | undefined;
  private started = false;

  constructor(
    next: DispatchHandler,
    private readonly facts: RegistryRequestFacts,
    private readonly ctx: RequestContext,
    private readonly signal: AbortSignal | undefined,
  ) {
    super(next);
  }

  override onResponseStart(controller: DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode >= 200 && !this.facts.expect.includes(statusCode)) {
      this.refused = { status: statusCode, retryAfter: headerValue(headers, 'retry-after'), chunks: [], size: 0 };
      return;
    }
    if (statusCode >= 200) this.started = true;
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseData(controller: DispatchController, chunk: Buffer): void {
    const r = this.refused;
    if (r === undefined) return super.onResponseData(controller, chunk);
    if (r.size < MAX_ERROR_BODY_BYTES) r.chunks.push(chunk.subarray(0, MAX_ERROR_BODY_BYTES - r.size));
    r.size += chunk.length;
  }

  override onResponseEnd(controller: DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    const r = this.refused;
    if (r === undefined) return super.onResponseEnd(controller, trailers);
    const error = registryResponseError(r.status, Buffer.concat(r.chunks).toString('utf8'), this.ctx, r.retryAfter);
    const delay = parseRetryAfter(r.retryAfter);
    if (delay !== undefined) requestedDelays.set(error, delay);
    super.onResponseError(controller, error);
  }

  override onResponseError(controller: DispatchController, error: Error): void {
    super.onResponseError(controller, this.started || this.signal?.aborted === true ? error : failureBeforeResponse(error, this.ctx));
  }
}

/** A failure before any response: undici's redirect limits, or the network's (networkError keeps ours as they are). */
function failureBeforeResponse(e: Error, ctx: RequestContext): ImagegateError {
  const code = systemErrorCode(e);
  if (code === 'UND_ERR_REDIRECT_MAX') {
    return new ImagegateError('REGISTRY', `${ctx.what}: registry ${ctx.host} redirected more than ${MAX_REDIRECTS} times`, { cause: e });
  }
  if (code === 'UND_ERR_INVALID_ARG' && /redirect loop/i.test(e.message)) {
    return new ImagegateError('REGISTRY', `${ctx.what}: registry ${ctx.host} redirected in a loop`, { cause: e });
  }
  return networkError(e, ctx);
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined;
}
