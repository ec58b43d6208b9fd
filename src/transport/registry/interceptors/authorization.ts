import type { RegistryAuth } from '../auth.js';
import { parseAuthenticate } from '../challenge.js';
import { headerValue } from '../response.js';
import {
  asError,
  dispatchLater,
  failBeforeStart,
  ForwardingHandler,
  originOf,
  withHeader,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type RegistryDispatchOptions,
  type RegistryInterceptor,
} from './registry-request.js';

/**
 * Authorization for requests to the registry's own origin (`registryOrigin`): the header `auth` gives for the
 * request's scopes, and on a 401 challenge (an expired token, a scope the registry wants added) one more try with
 * the authorization the challenge asks for, when the body can be sent again. Sits below undici's redirect
 * interceptor, so each hop is judged on its own: a hop to another origin (blob storage) never carries our
 * credentials, and a hop back to the registry does.
 */
export function authorizing(auth: RegistryAuth, registryOrigin: string): RegistryInterceptor {
  return (dispatch) => (options, handler) => {
    const facts = options.registry;
    if (facts === undefined || originOf(options) !== registryOrigin) return dispatch(options, handler);
    sendAuthorized(dispatch, options, handler, auth, facts.scopes, facts.replayable);
    return true;
  };
}

function sendAuthorized(dispatch: Dispatch, options: RegistryDispatchOptions, handler: DispatchHandler, auth: RegistryAuth, scopes: string[], mayRechallenge: boolean): void {
  auth.header(scopes).then(
    (authorization) => {
      const authorized = authorization === undefined ? options : { ...options, headers: withHeader(options.headers, 'authorization', authorization) };
      const next = mayRechallenge
        ? new ChallengeHandler(handler, auth, scopes, authorization !== undefined, (wider) => sendAuthorized(dispatch, options, handler, auth, wider, false))
        : handler;
      dispatchLater(dispatch, authorized, next);
    },
    (e: unknown) => failBeforeStart(handler, asError(e)),
  );
}

/**
 * Watches for a 401 whose challenge `auth` says another try can answer; that response is read and dropped, and
 * `tryAgain` sends the request once more with the scopes the challenge asked for. Any other response passes on.
 */
class ChallengeHandler extends ForwardingHandler {
  /** Set while a 401 is being dropped: the scopes for the next try, or why there is none. */
  private dropped: { scopes: string[] } | { error: Error } | undefined;

  constructor(
    next: DispatchHandler,
    private readonly auth: RegistryAuth,
    private readonly scopes: string[],
    private readonly sentAuthorization: boolean,
    private readonly tryAgain: (scopes: string[]) => void,
  ) {
    super(next);
  }

  override onResponseStart(controller: DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    const challenge = statusCode === 401 ? headerValue(headers, 'www-authenticate') : undefined;
    if (challenge !== undefined) {
      try {
        const next = this.auth.rechallenged(parseAuthenticate(challenge), this.scopes, this.sentAuthorization);
        if (next.retry) {
          this.dropped = { scopes: next.scopes };
          return;
        }
      } catch (e) {
        // The registry refused the credentials themselves.
        this.dropped = { error: asError(e) };
        return;
      }
    }
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.dropped === undefined) super.onResponseData(controller, chunk);
  }

  override onResponseEnd(controller: DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    const dropped = this.dropped;
    if (dropped === undefined) return super.onResponseEnd(controller, trailers);
    if ('error' in dropped) return super.onResponseError(controller, dropped.error);
    this.tryAgain(dropped.scopes);
  }
}
