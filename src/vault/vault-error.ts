import { ImagegateError, systemErrorCode } from '../errors.js';

/** What a Vault request was for, in the words of a message: `wrap 3 layer keys with transit/keys/app`. */
export interface VaultRequestContext {
  /** The API path, e.g. `transit/encrypt/app`, named in permission errors so the policy can be fixed. */
  path: string;
  what: string;
  address: string;
}

interface VaultResponseLike {
  statusCode?: number;
  body?: { errors?: unknown };
}

/** Vault's `{"errors":["..."]}` messages, joined; never the request (it may hold a plaintext or a token). */
export function vaultMessages(body: unknown): string {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors)) return '';
  // Vault wraps lists as "1 error occurred:\n\t* permission denied\n\n"; keep one line of what was said.
  return errors
    .filter((e): e is string => typeof e === 'string')
    .map((e) => e.replace(/^\d+ errors? occurred:\s*/, '').replace(/\s*\*\s+/g, ' ').replace(/\s+/g, ' ').trim())
    .join('; ');
}

/**
 * Turns a failed Vault call (node-vault's ApiResponseError, an undici network error, anything) into an error that
 * says which Vault, which path, what went wrong and what to do. Nothing of the request body is ever quoted.
 */
export function vaultError(e: unknown, ctx: VaultRequestContext): ImagegateError {
  if (e instanceof ImagegateError) return e;
  const response = (e as { response?: VaultResponseLike } | undefined)?.response;
  const status = response?.statusCode;
  if (status !== undefined) {
    const said = vaultMessages(response?.body) || `HTTP ${status}`;
    if (status === 403) {
      return new ImagegateError(
        'AUTH',
        `${ctx.what}: Vault at ${ctx.address} denied ${ctx.path} (${said}); the token's policies need "update" on path "${ctx.path}", or the token expired`,
        { cause: e },
      );
    }
    if (status === 503 && /sealed/i.test(said)) {
      return new ImagegateError('VAULT', `${ctx.what}: Vault at ${ctx.address} is sealed; unseal it and try again`);
    }
    if (/encryption key not found|no existing key named/i.test(said) || (status === 400 && /key not found/i.test(said))) {
      return new ImagegateError('BAD_KEY', `${ctx.what}: Vault at ${ctx.address} has no Transit key for ${ctx.path} (${said}); check the key name and mount`);
    }
    if (/ciphertext or signature version is disallowed by policy|too old|min_decryption_version/i.test(said)) {
      return new ImagegateError(
        'BAD_KEY',
        `${ctx.what}: the key version that wrapped this layer key is retired (below min_decryption_version) at ${ctx.address} (${said}); rewrap the image with \`imagegate rewrap\` before retiring versions`,
      );
    }
    if (/message authentication failed/i.test(said)) {
      return new ImagegateError(
        'NO_MATCHING_KEY',
        `${ctx.what}: Vault at ${ctx.address} could not unwrap the layer key (${said}); it was wrapped for another repository or another key`,
      );
    }
    return new ImagegateError('VAULT', `${ctx.what}: Vault at ${ctx.address} answered ${said} for ${ctx.path}`, { cause: e, temporary: status >= 500 || status === 429 });
  }
  const code = systemErrorCode(e) ?? systemErrorCode((e as { cause?: unknown } | undefined)?.cause);
  const detail = e instanceof Error ? e.message : String(e);
  return new ImagegateError(
    'VAULT',
    `${ctx.what}: cannot reach Vault at ${ctx.address} (${code ?? 'error'}: ${detail}); check VAULT_ADDR and that Vault is running`,
    { cause: e, temporary: true },
  );
}
