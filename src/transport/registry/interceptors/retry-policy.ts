import type { RetryHandler } from 'undici';
import { isImagegateError } from '../../../errors.js';
import { worthRetrying, type RetryPolicy } from '../../../util/retry.js';
import { requestedDelay } from './registry-errors.js';
import type { RegistryDispatchOptions } from './registry-request.js';

/**
 * Options for undici's retry interceptor that make it try a registry request as our `RetryPolicy` says: again after
 * a failure marked `temporary` (registryErrors, below it, turns a 503 or a reset connection into one), waiting as
 * long as the registry's Retry-After asked or with exponential backoff, and only when the body can be sent again
 * (a streamed upload is tried once; the copy retries the whole blob instead). undici's own status and error lists
 * are left empty: every decision is this policy's. A failure once a response streams is never retried here, so a
 * blob is not resumed with a Range request: its reader reads it again from the start.
 */
export function registryRetryOptions(policy: RetryPolicy): RetryHandler.RetryOptions {
  return {
    statusCodes: [],
    errorCodes: [],
    retry: (error, { state, opts }, done) => {
      const { registry: facts, signal } = opts as RegistryDispatchOptions;
      if (facts === undefined) return done(error);
      const attempts = facts.replayable ? policy.attempts : 1;
      const attempt = state.counter;
      if (attempt >= attempts || !worthRetrying(error) || signal?.aborted === true) return done(gaveUp(error, facts.replayable, policy));
      // undici cancels the returned timer when the request is aborted during the wait.
      return setTimeout(() => done(null), requestedDelay(error) ?? policy.baseDelayMs * 2 ** (attempt - 1));
    },
  };
}

/**
 * The error a request ends with: once tried as often as allowed it says so, and keeps its code and `temporary` flag,
 * marked so that callers do not multiply the tries.
 */
function gaveUp(error: Error, replayable: boolean, policy: RetryPolicy): Error {
  if (!replayable || !isImagegateError(error) || !error.temporary || policy.attempts <= 1) return error;
  return error.afterTries(policy.attempts);
}
