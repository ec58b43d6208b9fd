import { ImagegateError } from '../errors.js';

/**
 * The time one review may spend on registry look-ups. The API server gives up on a webhook after the `timeout` it
 * sends with each request, and the answer must reach it before then, so the budget is the configured one, never more
 * than that timeout less a margin (a fifth of it, at least half a second).
 */
export function reviewBudgetMs(configuredMs: number, apiServerTimeoutMs: number | undefined): number {
  if (apiServerTimeoutMs === undefined) return configuredMs;
  const margin = Math.max(MIN_MARGIN_MS, apiServerTimeoutMs / 5);
  return Math.max(MIN_BUDGET_MS, Math.min(configuredMs, apiServerTimeoutMs - margin));
}

const MIN_MARGIN_MS = 500;
const MIN_BUDGET_MS = 100;

/** Errors that ended look-ups because their review ran out of time. */
const budgetEndings = new WeakSet<object>();

/** The reason a review aborts its look-ups with when its budget ends. */
export function lookUpBudgetEnded(ms: number): ImagegateError {
  const e = new ImagegateError('REGISTRY', `image look-ups took longer than the ${ms} ms budget`);
  budgetEndings.add(e);
  return e;
}

/** A look-up cancelled by its caller says nothing about the image, so it is not remembered as a failure. */
export function isLookUpCancelled(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (budgetEndings.has(e) || (e as { name?: unknown }).name === 'AbortError');
}

/**
 * The API server says how long it waits for this webhook in the `timeout` query parameter (`?timeout=10s`, a Go
 * duration); undefined when absent or unreadable (a hand-made request), and the configured budget applies.
 */
export function apiServerTimeoutMs(url: string | undefined): number | undefined {
  const query = (url ?? '').split('?')[1];
  if (query === undefined) return undefined;
  const value = new URLSearchParams(query).get('timeout');
  const m = value !== null ? /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(value) : null;
  if (m === null) return undefined;
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000;
  return Number(m[1]) * unit;
}
