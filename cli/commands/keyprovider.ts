import type { Command } from 'commander';
import { VaultLayerKeys } from '../../src/crypto/wrappers/vault.js';
import { loadKeyProviderConfig } from '../../src/keyprovider/config.js';
import { serveKeyProviderGrpc } from '../../src/keyprovider/grpc.js';
import { answerKeyProviderRequest } from '../../src/keyprovider/key-provider.js';
import { info, interruptSignal } from '../run.js';
import { MAX_REQUEST_BYTES } from '../../src/keyprovider/protocol.js';
import { readAll } from '../../src/util/streams.js';
import { vaultSettingsFromEnv } from '../../src/vault/settings.js';
import { Transit } from '../../src/vault/transit.js';
import { VaultSession } from '../../src/vault/vault-session.js';

export function registerKeyprovider(program: Command): void {
  program
    .command('keyprovider')
    .summary('the ocicrypt key provider for Vault-wrapped images (for skopeo, podman, CRI-O, containerd)')
    .description(
      'Answers one ocicrypt key-provider request on stdin with Vault Transit and writes the answer to stdout.\n' +
        'Register it in the file OCICRYPT_KEYPROVIDER_CONFIG names:\n' +
        '  {"key-providers": {"imagegate": {"cmd": {"path": "/usr/local/bin/imagegate", "args": ["keyprovider", "--config", "/etc/imagegate/keyprovider.json"]}}}}\n' +
        'then encrypt with provider:imagegate:[MOUNT/]KEY@HOST/REPOSITORY and decrypt with provider:imagegate.',
    )
    .option('--config <file>', 'JSON settings: {"vault": {VAULT_ADDR, IMAGEGATE_VAULT_AUTH, …}, "defaultKey", "defaultBinding"}')
    .option('--grpc <address>', 'serve keyprovider.KeyProviderService over gRPC on HOST:PORT or unix:///PATH instead (plaintext: loopback or a socket only)')
    .action(async (flags: { config?: string; grpc?: string }) => {
      const config = await loadKeyProviderConfig(flags.config);
      const settings = await vaultSettingsFromEnv({ ...process.env, ...config.vault });
      const session = new VaultSession(settings);
      const vault = new VaultLayerKeys(new Transit(session));
      if (flags.grpc !== undefined) {
        await session.ensureLoggedIn();
        session.startRenewal((e) => info(`imagegate keyprovider: ${e.message}`));
        const served = await serveKeyProviderGrpc(flags.grpc, (request) => answerKeyProviderRequest(request, vault, config));
        info(`imagegate keyprovider: serving keyprovider.KeyProviderService on ${served.address}`);
        process.stdout.write(`${served.address}\n`);
        const signal = interruptSignal();
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        await served.stop();
        return;
      }
      const request = await readAll(process.stdin, MAX_REQUEST_BYTES, 'the key-provider request on stdin');
      process.stdout.write(await answerKeyProviderRequest(request, vault, config));
    });
}
