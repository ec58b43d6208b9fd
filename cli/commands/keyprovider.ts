import type { Command } from 'commander';
import { ImagegateError } from '../../src/errors.js';
import { Keyring } from '../../src/crypto/schemes/keyring.js';
import { VaultLayerKeys } from '../../src/crypto/schemes/vault-layer-keys.js';
import { PROVIDER_DECRYPT_USAGE, PROVIDER_RECIPIENT_USAGE, TRANSIT_SESSION, vaultTransitScheme } from '../../src/crypto/schemes/vault-transit.js';
import { loadKeyProviderConfig } from '../../src/keyprovider/config.js';
import { serveKeyProviderGrpc } from '../../src/keyprovider/grpc.js';
import { answerKeyProviderRequest } from '../../src/keyprovider/key-provider.js';
import { parseKeyProviderListenAddress } from '../../src/keyprovider/listen-address.js';
import { resolveSocketGroup } from '../../src/keyprovider/socket-access.js';
import { info, interruptSignal } from '../run.js';
import { MAX_REQUEST_BYTES } from '../../src/keyprovider/protocol.js';
import { readAll } from '../../src/util/streams.js';
import { vaultSettingsFromEnv } from '../../src/vault/settings.js';
import { Transit } from '../../src/vault/transit.js';
import { VaultSession } from '../../src/vault/vault-session.js';

interface KeyproviderFlags {
  config?: string;
  grpc?: string;
  grpcSocketGroup?: string;
}

export function registerKeyprovider(program: Command): void {
  program
    .command('keyprovider')
    .summary('the ocicrypt key provider for Vault-wrapped images (for skopeo, podman, CRI-O, containerd)')
    .description(
      'Answers one ocicrypt key-provider request on stdin with Vault Transit and writes the answer to stdout.\n' +
        'Register it in the file OCICRYPT_KEYPROVIDER_CONFIG names:\n' +
        '  {"key-providers": {"imagegate": {"cmd": {"path": "/usr/local/bin/imagegate", "args": ["keyprovider", "--config", "/etc/imagegate/keyprovider.json"]}}}}\n' +
        `then encrypt with ${PROVIDER_RECIPIENT_USAGE} and decrypt with ${PROVIDER_DECRYPT_USAGE}.\n\n` +
        'The --config file (JSON) holds "vault" (the Vault settings imagegate reads from the environment: VAULT_ADDR, ' +
        'IMAGEGATE_VAULT_AUTH, …), "defaultKey" and "defaultBinding" for wrapping, and "allowedBindings": a list of ' +
        'repository globs (registry.example/team/**; * within a path segment, ** across them) limiting which ' +
        "repositories' layer keys this node may unwrap; a key bound elsewhere is refused. Unknown settings are errors.\n\n" +
        'Only derived Transit keys are used: they bind each wrapped key to its repository.',
    )
    .option('--config <file>', 'JSON settings: {"vault": {VAULT_ADDR, IMAGEGATE_VAULT_AUTH, …}, "defaultKey", "defaultBinding", "allowedBindings"}')
    .option(
      '--grpc <address>',
      'serve keyprovider.KeyProviderService over plaintext gRPC instead, on unix:///PATH (socket mode 0600) or a loopback HOST:PORT (127.0.0.1, [::1], localhost); other addresses are refused',
    )
    .option('--grpc-socket-group <group>', 'with --grpc unix:///PATH: let this group (name or GID) connect too, mode 0660 (e.g. a runtime not running as root)')
    .action(async (flags: KeyproviderFlags) => {
      // Usage errors first, before any Vault login: a refused address must not wait for Vault.
      const listen = flags.grpc !== undefined ? parseKeyProviderListenAddress(flags.grpc) : undefined;
      if (flags.grpcSocketGroup !== undefined && listen?.kind !== 'unix') {
        throw new ImagegateError('USAGE', '--grpc-socket-group applies only with --grpc unix:///PATH');
      }
      const socketGroup = flags.grpcSocketGroup !== undefined ? await resolveSocketGroup(flags.grpcSocketGroup) : undefined;
      const config = await loadKeyProviderConfig(flags.config);
      const settings = await vaultSettingsFromEnv({ ...process.env, ...config.vault });
      const session = new VaultSession(settings);
      const vault = new VaultLayerKeys(new Transit(session));
      const keyring = new Keyring([], config.repository).provide(TRANSIT_SESSION, async () => vault);
      const answer = (request: Buffer): Promise<Buffer> => answerKeyProviderRequest(request, vaultTransitScheme, keyring, config);
      if (listen !== undefined) {
        await session.ensureLoggedIn();
        session.startRenewal((e) => info(`imagegate keyprovider: ${e.message}`));
        const served = await serveKeyProviderGrpc(listen.address, answer, socketGroup !== undefined ? { socketGroup } : {});
        info(`imagegate keyprovider: serving keyprovider.KeyProviderService on ${served.address}`);
        process.stdout.write(`${served.address}\n`);
        const signal = interruptSignal();
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        await served.stop();
        return;
      }
      const request = await readAll(process.stdin, MAX_REQUEST_BYTES, 'the key-provider request on stdin');
      process.stdout.write(await answer(request));
    });
}
