import { ImagegateError } from '../errors.js';
import { readUserFile } from '../util/user-file.js';
import { canonicalBindingGlob } from './allowed-bindings.js';
import type { KeyProviderOptions } from './key-provider.js';

/**
 * The key provider's own configuration. ocicrypt starts the provider with fixed arguments and no environment of
 * its choosing, so settings come from a file named by `--config`:
 *
 * ```json
 * { "vault": { "VAULT_ADDR": "https://vault:8200", "IMAGEGATE_VAULT_AUTH": "kubernetes", "IMAGEGATE_VAULT_ROLE": "node" },
 *   "defaultKey": "transit/app-layers", "defaultBinding": "registry.example/team/app",
 *   "allowedBindings": ["registry.example/team/**"] }
 * ```
 * `vault` holds the same variables imagegate reads from the environment; they take precedence over it. `$comment`
 * (a string or a list of strings) is for notes and is not read.
 * `allowedBindings` (optional) limits unwrapping to layer keys bound to repositories matching these globs, for a
 * node pool that runs only some teams' images (allowed-bindings.ts). Unknown fields are refused: a misspelt
 * `allowedBindings` ignored would let this node unwrap every image without anyone noticing.
 */
export interface KeyProviderConfig extends KeyProviderOptions {
  vault: Record<string, string>;
}

const MAX_CONFIG_BYTES = 64 * 1024;
const STRING_FIELDS = ['defaultKey', 'defaultBinding', 'repository'] as const;
/** Notes for whoever edits the file (JSON has no comments); a string or a list of strings, never read. */
const COMMENT_FIELD = '$comment';
const KNOWN_FIELDS = new Set<string>(['vault', 'allowedBindings', ...STRING_FIELDS]);

export async function loadKeyProviderConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<KeyProviderConfig> {
  const fromEnv: KeyProviderConfig = {
    vault: {},
    ...(env.IMAGEGATE_KEYPROVIDER_KEY !== undefined ? { defaultKey: env.IMAGEGATE_KEYPROVIDER_KEY } : {}),
    ...(env.IMAGEGATE_KEYPROVIDER_BINDING !== undefined ? { defaultBinding: env.IMAGEGATE_KEYPROVIDER_BINDING } : {}),
  };
  if (file === undefined) return fromEnv;
  const text = await readUserFile(file, (reason) => `key-provider config ${file}: cannot read it (${reason})`);
  if (text.length > MAX_CONFIG_BYTES) throw new ImagegateError('BAD_FORMAT', `key-provider config ${file} is larger than ${MAX_CONFIG_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ImagegateError('BAD_FORMAT', `key-provider config ${file} is not JSON`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ImagegateError('BAD_FORMAT', `key-provider config ${file} is not a JSON object`);
  return { ...fromEnv, ...parseConfigObject(json as Record<string, unknown>, file) };
}

function parseConfigObject(json: Record<string, unknown>, file: string): Partial<KeyProviderConfig> {
  const bad = (why: string): ImagegateError => new ImagegateError('BAD_FORMAT', `key-provider config ${file}: ${why}`);
  const unknown = Object.keys(json).filter((k) => !KNOWN_FIELDS.has(k) && k !== COMMENT_FIELD);
  if (unknown.length > 0) {
    throw bad(`${unknown.map((k) => JSON.stringify(k)).join(', ')} is not a setting this build knows; the settings are ${[...KNOWN_FIELDS].join(', ')}`);
  }
  const out: Partial<KeyProviderConfig> = {};
  const vault = json.vault;
  if (vault !== undefined) {
    if (typeof vault !== 'object' || vault === null || Array.isArray(vault) || !Object.values(vault).every((v) => typeof v === 'string')) {
      throw bad('"vault" must be an object of string settings (VAULT_ADDR, IMAGEGATE_VAULT_AUTH, …)');
    }
    out.vault = vault as Record<string, string>;
  }
  for (const field of STRING_FIELDS) {
    const v = json[field];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw bad(`"${field}" must be a string`);
    out[field] = v;
  }
  const allowed = json.allowedBindings;
  if (allowed !== undefined) {
    if (!Array.isArray(allowed) || !allowed.every((g) => typeof g === 'string')) {
      throw bad('"allowedBindings" must be a list of repository globs, e.g. ["registry.example/team/**"]');
    }
    out.allowedBindings = allowed.map((g: string, i) => canonicalBindingGlob(g, `key-provider config ${file}: allowedBindings[${i}]`));
  }
  return out;
}
