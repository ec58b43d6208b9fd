import type { Dispatcher } from 'undici';

/**
 * What the interceptors of a registry's request chain need to know about one request beyond HTTP. It travels in
 * undici's dispatch options under `registry`: undici's own redirect and retry interceptors copy the options they
 * are given, so every hop and every try carries it. A request without it (a ping, a token request) passes through.
 */
export interface RegistryRequestFacts {
  /** Statuses that count as success; any other becomes an error. */
  expect: readonly number[];
  /** Token scopes the request needs, e.g. `repository:team/app:pull`. */
  scopes: string[];
  /** What the request does, for messages: `pull manifest team/app:1.0`. */
  what: string;
  /** False for a streamed body: it is gone once sent, so neither a retry nor a re-authorization can send it again. */
  replayable: boolean;
  /** The origin the request was first sent to; any other origin it reaches is a redirect's. */
  origin: string;
}

export type RegistryDispatchOptions = Dispatcher.DispatchOptions & { registry?: RegistryRequestFacts; signal?: AbortSignal | null };
export type DispatchHandler = Dispatcher.DispatchHandler;
export type DispatchController = Dispatcher.DispatchController;
export type Dispatch = (options: RegistryDispatchOptions, handler: DispatchHandler) => boolean;

/** An undici interceptor (`dispatch => dispatch`) for `Dispatcher.compose`, typed with our dispatch options. */
export type RegistryInterceptor = (dispatch: Dispatch) => Dispatch;

/** For `Dispatcher.compose`, which types its interceptors with undici's options; ours add `registry`, passed on unread. */
export function composable(interceptor: RegistryInterceptor): Dispatcher.DispatcherComposeInterceptor {
  return interceptor as Dispatcher.DispatcherComposeInterceptor;
}

/** The origin a dispatch goes to, as `URL.origin` spells it. */
export function originOf(options: RegistryDispatchOptions): string {
  return new URL(String(options.origin)).origin;
}

/** Fails a request before anything was sent for it (no connection, so no controller, as undici's own interceptors do). */
export function failBeforeStart(handler: DispatchHandler, error: Error): void {
  handler.onResponseError?.(null as unknown as DispatchController, error);
}

/** Dispatches later than asked (after a ping, a token); a dispatch that throws fails the request instead. */
export function dispatchLater(dispatch: Dispatch, options: RegistryDispatchOptions, handler: DispatchHandler): void {
  try {
    dispatch(options, handler);
  } catch (e) {
    failBeforeStart(handler, asError(e));
  }
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** `headers` plus one more; undici's redirect handler hands hops their headers as a flat `[name, value, …]` list. */
export function withHeader(headers: Dispatcher.DispatchOptions['headers'], name: string, value: string): Dispatcher.DispatchOptions['headers'] {
  if (headers === undefined || headers === null) return { [name]: value };
  if (Array.isArray(headers)) return [...(headers as string[]), name, value];
  if (Symbol.iterator in headers) return [...(headers as Iterable<[string, string | string[] | undefined]>), [name, value]];
  return { ...headers, [name]: value };
}

/** A handler that passes every event on; interceptors override the events they act on. */
export class ForwardingHandler implements DispatchHandler {
  constructor(protected readonly next: DispatchHandler) {}

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.next.onRequestStart?.(controller, context);
  }

  onResponseStart(controller: DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    this.next.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.next.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.next.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchController, error: Error): void {
    this.next.onResponseError?.(controller, error);
  }
}
