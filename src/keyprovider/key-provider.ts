import { ImagegateError } from '../errors.js';
import type { KeyScheme } from '../crypto/schemes/key-scheme.js';
import type { Keyring } from '../crypto/schemes/keyring.js';
import { assertBindingAllowed } from './allowed-bindings.js';
import { keyUnwrapResponse, keyWrapResponse, parseKeyProviderRequest } from './protocol.js';

export interface KeyProviderOptions {
  /** Key used when the recipient names none (`provider:NAME` alone). */
  defaultKey?: string;
  /** Repository keys are bound to when the recipient names none. */
  defaultBinding?: string;
  /** The repository an unwrap is for, when the runtime's configuration says; otherwise the item's own binding. */
  repository?: string;
  /** Canonical repository globs; when set, only layer keys bound to a matching repository are unwrapped. */
  allowedBindings?: string[];
}

/**
 * Answers one ocicrypt key-provider request with `scheme`, a key scheme that is a key provider (its annotation is
 * `provider.NAME`; its recipients `provider:NAME[:PARAMS]`). `keyring` holds the scheme's service session and the
 * repository from the configuration.
 */
export async function answerKeyProviderRequest(request: Buffer, scheme: KeyScheme, keyring: Keyring, options: KeyProviderOptions = {}): Promise<Buffer> {
  const provider = scheme.provider;
  if (provider === undefined) throw new Error(`${scheme.name} is not a key provider`);
  const req = parseKeyProviderRequest(request);
  if (req.op === 'keywrap') {
    const parameter = req.parameters[provider.name]?.[0]?.toString('utf8');
    const defaults = { ...(options.defaultKey !== undefined ? { key: options.defaultKey } : {}), ...(options.defaultBinding !== undefined ? { binding: options.defaultBinding } : {}) };
    return keyWrapResponse(await provider.wrap(req.optsData, parameter, keyring, defaults));
  }
  const label = 'key-provider unwrap';
  // The scheme checks the binding against the key service; this checks that this node may unwrap it at all.
  if (options.allowedBindings !== undefined) {
    const bindings = scheme.keyReferences?.(req.annotation).map((r) => r.binding) ?? [];
    if (bindings.length === 0) throw new ImagegateError('AUTH', `${label}: the wrapped key names no repository, so allowedBindings cannot admit it`);
    for (const binding of bindings) assertBindingAllowed(options.repository ?? binding, options.allowedBindings, label);
  }
  const opts = await scheme.unwrap([req.annotation], keyring, label);
  if (opts === undefined) throw new ImagegateError('NO_MATCHING_KEY', `${label}: no ${scheme.name} session to unwrap with; check the key provider's configuration`);
  return keyUnwrapResponse(opts);
}
