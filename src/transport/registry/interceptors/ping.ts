import type { Dispatcher } from 'undici';
import type { RetryPolicy } from '../../../util/retry.js';
import { retrying } from '../../../util/retry.js';
import type { RegistryAuth } from '../auth.js';
import { parseAuthenticate } from '../challenge.js';
import { MAX_ERROR_BODY_BYTES, networkError, registryResponseError, type RequestContext } from '../registry-error.js';
import { headerValue, readCapped } from '../response.js';
import { asError, dispatchLater, failBeforeStart, type RegistryInterceptor } from './registry-request.js';

export interface PingTarget {
  /** The bare connection pool: the ping needs neither authorization nor redirects. */
  agent: Dispatcher;
  base: URL;
  host: string;
  /** Learns from the ping's 401 how the registry wants to be authenticated. */
  auth: RegistryAuth;
  retry: RetryPolicy;
}

/**
 * `GET /v2/` once per registry, before its first request: learns how the registry wants to be authenticated, and
 * fails early when it cannot be reached. The outermost interceptor, so a ping that fails is reported as it is,
 * not tried again by the request's retries; the next request pings again rather than remember the failure.
 */
export function pingingFirst(target: PingTarget): RegistryInterceptor {
  let pinged: Promise<void> | undefined;
  let ready = false;
  return (dispatch) => (options, handler) => {
    if (options.registry === undefined || ready) return dispatch(options, handler);
    if (pinged === undefined) {
      pinged = pingRegistry(target, options.signal ?? undefined).then(() => {
        ready = true;
      });
      pinged.catch(() => (pinged = undefined));
    }
    pinged.then(
      () => dispatchLater(dispatch, options, handler),
      (e: unknown) => failBeforeStart(handler, asError(e)),
    );
    return true;
  };
}

function pingRegistry({ agent, base, host, auth, retry }: PingTarget, signal: AbortSignal | undefined): Promise<void> {
  const ctx: RequestContext = { method: 'GET', what: `connect to registry ${host}`, host };
  return retrying(
    async () => {
      let res: Dispatcher.ResponseData;
      try {
        res = await agent.request({ origin: base.origin, path: '/v2/', method: 'GET', signal });
      } catch (e) {
        throw networkError(e, ctx);
      }
      const body = await readCapped(res.body, MAX_ERROR_BODY_BYTES);
      if (res.statusCode === 401) auth.learn(parseAuthenticate(headerValue(res.headers, 'www-authenticate') ?? ''));
      else if (res.statusCode !== 200) throw registryResponseError(res.statusCode, body, ctx);
    },
    retry,
    { signal },
  );
}
