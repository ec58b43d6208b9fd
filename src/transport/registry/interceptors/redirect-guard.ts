import { ImagegateError } from '../../../errors.js';
import { failBeforeStart, originOf, type RegistryInterceptor } from './registry-request.js';

/** Redirects a read may follow (blob storage, a CDN) before it fails. */
export const MAX_REDIRECTS = 5;

/**
 * Refuses a redirect from a TLS registry to plain HTTP, where the data (and any signed URL) would travel in clear
 * text. Sits below undici's redirect interceptor, which dispatches each hop through it; the request's own first
 * origin is the caller's choice and is not judged here.
 */
export function refusingPlainHttpRedirects(base: URL, host: string): RegistryInterceptor {
  return (dispatch) => (options, handler) => {
    const facts = options.registry;
    if (facts === undefined) return dispatch(options, handler);
    const origin = originOf(options);
    const protocol = new URL(origin).protocol;
    if (origin !== facts.origin && protocol !== 'https:' && protocol !== base.protocol) {
      failBeforeStart(handler, new ImagegateError('REGISTRY', `${facts.what}: registry ${host} redirected to a plain-HTTP URL ${origin}; refusing`));
      return true;
    }
    return dispatch(options, handler);
  };
}
