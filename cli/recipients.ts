import { loadPrivateKey, type LoadedKey } from '../src/crypto/key-files.js';
import { prepareRecipients } from '../src/crypto/recipients.js';
import type { LayerKeyWrapper } from '../src/crypto/schemes/key-scheme.js';
import { encryptionKeyring } from './keyring.js';

/**
 * `--recipient SCHEME:VALUE`, each scheme's recipients ready to wrap. `binding` is the repository the image is pushed
 * to, which schemes that bind wrapped keys (Vault) bind them to.
 */
export async function loadRecipients(specs: readonly string[], binding?: string): Promise<LayerKeyWrapper[]> {
  return prepareRecipients(specs, { binding, keyring: encryptionKeyring() });
}

/** `--key FILE`: private keys tried on every wrapped layer key. */
export async function loadKeys(files: readonly string[]): Promise<LoadedKey[]> {
  return Promise.all(files.map((f) => loadPrivateKey(f)));
}
