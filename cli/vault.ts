import { VaultLayerKeys } from '../src/crypto/wrappers/vault.js';
import { vaultSettingsFromEnv } from '../src/vault/settings.js';
import { Transit } from '../src/vault/transit.js';
import { VaultSession } from '../src/vault/vault-session.js';

/** A Vault session from the environment (VAULT_ADDR, VAULT_TOKEN or IMAGEGATE_VAULT_AUTH…), for wrapping layer keys. */
export async function vaultLayerKeysFromEnv(): Promise<VaultLayerKeys> {
  return new VaultLayerKeys(new Transit(new VaultSession(await vaultSettingsFromEnv())));
}
