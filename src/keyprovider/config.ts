import { ImagegateError } from '../errors.js';
import { readUserFile } from '../util/user-file.js';
import type { KeyProviderOptions } from './key-provider.js';

/**
 * The key provider's own configuration. ocicrypt starts the provider with fixed arguments and no environment of
 * its choosing, so settings come from a file named by `--config`:
 *
 * ```json
 * { "vault": { "VAULT_ADDR": "https://vault:8200", "IMAGEGATE_VAULT_AUTH": "kubernetes", "IMAGEGATE_VAULT_ROLE": "node" },
 *   "defaultKey": "transit/app-layers", "defaultBinding": "registry.example/team/app" }
 * ```
 * `vault` holds the same variables imagegate reads from the environment; they take precedence over it.
 */
export interface KeyProviderConfig extends KeyProviderOptions {
  vault: Record<string, string>;
}

const MAX_CONFIG_BYTES = 64 * 1024;

export async function loadKeyProviderConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<KeyProviderConfig> {
  const fromEnv: KeyProviderConfig = {
    vault: {},
    ...(env.IMAGEGATE_KEYPROVIDER_KEY !== undefined ? { defaultKey: env.IMAGEGATE_KEYPROVIDER_KEY } : {}),
    ...(env.IMAGEGATE_KEYPROVIDER_BINDING !== undefined ? { defaultBinding: env.IMAGEGATE_KEYPROVIDER_BINDING } : {}),
  };
  if (file === undefined) return fromEnv;
  const text = await readUserFile(file, (reason) => `key-provider config ${file}: cannot read it (${reason})`);
  if (text.length > MAX_CONFIG_BYTES) throw new ImagegateError('BAD_FORMAT', `key-provider config ${file} is larger than ${MAX_CONFIG_BYTES} bytes`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new ImagegateError('BAD_FORMAT', `key-provider config ${file} is not JSON`);
  }
  const out: KeyProviderConfig = { ...fromEnv };
  const vault = json.vault;
  if (vault !== undefined) {
    if (typeof vault !== 'object' || vault === null || Array.isArray(vault) || !Object.values(vault).every((v) => typeof v === 'string')) {
      throw new ImagegateError('BAD_FORMAT', `key-provider config ${file}: "vault" must be an object of string settings (VAULT_ADDR, IMAGEGATE_VAULT_AUTH, …)`);
    }
    out.vault = vault as Record<string, string>;
  }
  for (const field of ['defaultKey', 'defaultBinding', 'repository'] as const) {
    const v = json[field];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new ImagegateError('BAD_FORMAT', `key-provider config ${file}: "${field}" must be a string`);
    out[field] = v;
  }
  return out;
}
