/**
 * An ocicrypt key-provider configuration (the file OCICRYPT_KEYPROVIDER_CONFIG names) that registers the built
 * `imagegate keyprovider` as the cmd provider `imagegate`, for Go clients (ctr-enc, skopeo, ctd-decoder) in tests.
 */
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI } from './imagegate.js';

/**
 * Writes into `dir` the provider's own settings (`--config`, holding `vault`), a wrapper script and the ocicrypt
 * configuration; returns the configuration's path. ocicrypt runs the provider with fixed arguments and an environment
 * it does not document, so every setting travels in --config and the wrapper names this Node binary explicitly.
 */
export async function writeImagegateKeyProviderConfig(dir: string, vault: Record<string, string>): Promise<string> {
  const settings = path.join(dir, 'imagegate-keyprovider.json');
  await writeFile(settings, JSON.stringify({ vault }));
  const wrapper = path.join(dir, 'imagegate-keyprovider');
  await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" keyprovider --config "${settings}"\n`);
  await chmod(wrapper, 0o755);
  const config = path.join(dir, 'ocicrypt-keyprovider.json');
  await writeFile(config, JSON.stringify({ 'key-providers': { imagegate: { cmd: { path: wrapper, args: [] } } } }));
  return config;
}
