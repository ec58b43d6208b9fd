import { setTimeout as sleep } from 'node:timers/promises';
import { isImagegateError } from '../errors.js';

export interface RetryPolicy {
  /** Tries in all, including the first. */
  attempts: number;
  /** Wait before the second try; doubled for each further one. */
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 500 };

export interface RetryHooks {
  /** Whether a failure is worth another try; by default `worthRetrying`. */
  retryable?: (e: unknown) => boolean;
  /** A wait the failure itself asks for (a registry's Retry-After), instead of the backoff. */
  delayFor?: (e: unknown) => number | undefined;
  /** Told before each wait, e.g. to show "retrying" in the progress display. */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
}

/** Our errors marked `temporary`, unless a retry loop already gave up on them. */
export function worthRetrying(e: unknown): boolean {
  return isImagegateError(e) && e.temporary && !e.triesSpent;
}

/** Runs `task` until it succeeds, fails for good, or the tries run out, waiting with exponential backoff between tries. */
export async function retrying<T>(task: (attempt: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  const retryable = hooks.retryable ?? worthRetrying;
  for (let attempt = 1; ; attempt++) {
    try {
      return await task(attempt);
    } catch (e) {
      if (attempt >= policy.attempts || !retryable(e) || hooks.signal?.aborted === true) throw e;
      const delayMs = hooks.delayFor?.(e) ?? policy.baseDelayMs * 2 ** (attempt - 1);
      hooks.onRetry?.(e, attempt, delayMs);
      await sleep(delayMs, undefined, { signal: hooks.signal });
    }
  }
}
