import { ImagegateError } from '../errors.js';
import { decodeVaultItem, VAULT_PROVIDER_NAME, type VaultLayerKeys } from '../crypto/wrappers/vault.js';
import { parseTransitKeyRef } from '../vault/transit.js';
import { assertBindingAllowed } from './allowed-bindings.js';
import { keyUnwrapResponse, keyWrapResponse, parseKeyProviderRequest } from './protocol.js';

export interface KeyProviderOptions {
  /** Transit key used when the recipient names none (`provider:imagegate` alone). */
  defaultKey?: string;
  /** Repository keys are bound to when the recipient names none. */
  defaultBinding?: string;
  /** The repository an unwrap is for, when the runtime's configuration says; otherwise the item's own binding. */
  repository?: string;
  /** Canonical repository globs; when set, only layer keys bound to a matching repository are unwrapped. */
  allowedBindings?: string[];
}

/**
 * Answers one key-provider request with Vault Transit. The recipient's parameters (`provider:imagegate:PARAMS`)
 * are `[MOUNT/]KEY[@REPOSITORY]`: which Transit key wraps, and which repository the wrapped key is bound to.
 */
export async function answerKeyProviderRequest(request: Buffer, vault: VaultLayerKeys, options: KeyProviderOptions = {}): Promise<Buffer> {
  const req = parseKeyProviderRequest(request);
  if (req.op === 'keywrap') {
    const params = req.parameters[VAULT_PROVIDER_NAME]?.[0]?.toString('utf8');
    const { key, binding } = parseRecipientParams(params === 'Enabled' ? undefined : params, options);
    return keyWrapResponse(await vault.wrap(req.optsData, key, binding));
  }
  const label = 'key-provider unwrap';
  const item = decodeVaultItem(req.annotation, label);
  // Vault checks the binding against the derived key's context; this checks that this node may unwrap it at all.
  if (options.allowedBindings !== undefined) assertBindingAllowed(options.repository ?? item.binding, options.allowedBindings, label);
  return keyUnwrapResponse(await vault.unwrap(item, options.repository, label));
}

function parseRecipientParams(params: string | undefined, options: KeyProviderOptions): { key: ReturnType<typeof parseTransitKeyRef>; binding: string } {
  const at = params?.indexOf('@') ?? -1;
  const keyText = (at >= 0 ? params!.slice(0, at) : params) || options.defaultKey;
  const binding = (at >= 0 ? params!.slice(at + 1) : undefined) || options.defaultBinding;
  if (keyText === undefined) {
    throw new ImagegateError('USAGE', 'the recipient names no Transit key: use provider:imagegate:[MOUNT/]KEY@REPOSITORY, or set a default key in the key-provider configuration');
  }
  if (binding === undefined) {
    throw new ImagegateError('USAGE', `the recipient names no repository to bind ${keyText} to: use provider:imagegate:${keyText}@HOST/REPOSITORY`);
  }
  return { key: parseTransitKeyRef(keyText), binding };
}
