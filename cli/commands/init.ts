import type { Command } from 'commander';
import { ImagegateError } from '../../src/errors.js';
import { parsePlatform } from '../../src/image/descriptor.js';
import { checkKeyAccess, hostPlatform } from '../../src/ops/check-access.js';
import { repositoryOf, withSource } from '../../src/transport/transports.js';
import { info } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { vaultLayerKeysFromEnv } from '../vault.js';

interface InitFlags extends TransferFlags {
  check?: boolean;
  platform?: string;
}

export function registerInit(program: Command): void {
  const command = program
    .command('init')
    .summary("the pod's init container: prove this pod's identity can unwrap its images' layer keys")
    .description(
      'With --check (node runtime model), logs in to Vault as the pod (its projected service-account token) and\n' +
        "unwraps the key of every encrypted layer of this node's platform, for each image, in one Transit batch,\n" +
        'without reading layer bytes. Exits 0 only if every key unwraps; otherwise the pod does not start.',
    )
    .argument('<image...>', 'docker://HOST/REPO@DIGEST (the webhook passes the pinned images)')
    .option('--check', 'check key access only (node model)')
    .option('-p, --platform <os/arch[/variant]>', "the pod's platform (default: this machine's)");
  addTransferOptions(command, false).action(async (images: string[], flags: InitFlags) => {
    if (flags.check !== true) throw new ImagegateError('UNSUPPORTED', 'imagegate init decrypts in the pod (pod model) in a later release; use --check (node model)');
    const platform = flags.platform !== undefined ? parsePlatform(flags.platform) : hostPlatform();
    const transfer = await transferSettings({ ...flags, quiet: true }, 'init');
    const keys = await vaultLayerKeysFromEnv();
    // Every image at once: their Transit calls share one batch per key.
    const results = await Promise.all(
      images.map((image) => withSource(image, (source) => checkKeyAccess(source, platform, { keys, repository: repositoryOf(image) }), transfer.source)),
    );
    for (const r of results) {
      info(
        r.encryptedLayers === 0
          ? `imagegate init --check: ${r.image}: no encrypted layers`
          : `imagegate init --check: ${r.image}${r.platform !== undefined ? ` ${r.platform}` : ''}: ${r.encryptedLayers} of ${r.layers} layer key(s) unwrapped (${r.keys.join(', ')})`,
      );
    }
  });
}
