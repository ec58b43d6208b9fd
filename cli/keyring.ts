import { Keyring } from '../src/crypto/schemes/keyring.js';
import { VaultLayerKeys } from '../src/crypto/schemes/vault-layer-keys.js';
import { TRANSIT_SESSION } from '../src/crypto/schemes/vault-transit.js';
import type { LoadedKey } from '../src/crypto/key-files.js';
import { vaultSettingsFromEnv } from '../src/vault/settings.js';
import { Transit } from '../src/vault/transit.js';
import { VaultSession } from '../src/vault/vault-session.js';

/**
 * Where the CLI registers key-service sessions on a keyring: Vault from the environment (VAULT_ADDR, VAULT_TOKEN or
 * IMAGEGATE_VAULT_AUTH…). A scheme that calls another service registers its session here too.
 */
function withServices(keyring: Keyring): Keyring {
  return keyring.provide(TRANSIT_SESSION, vaultLayerKeysFromEnv);
}

/** A Transit session from the environment. */
async function vaultLayerKeysFromEnv(): Promise<VaultLayerKeys> {
  return new VaultLayerKeys(new Transit(new VaultSession(await vaultSettingsFromEnv())));
}

/** For encrypt: the services recipients may name; each is opened only if a recipient needs it. */
export function encryptionKeyring(): Keyring {
  return withServices(new Keyring());
}

/**
 * For decrypt, unpack and check: key files, and the key services only when `--vault` asks for them (without it a
 * Vault-wrapped layer is reported as needing --vault, not silently unwrapped with whatever the environment holds).
 */
export async function decryptionKeyring(keys: readonly LoadedKey[], options: { services: boolean; repository: string | undefined }): Promise<Keyring> {
  const keyring = new Keyring(keys, options.repository);
  // Opened now, as asked: bad Vault settings fail before any image is read.
  return options.services ? withServices(keyring).openAll() : keyring;
}
