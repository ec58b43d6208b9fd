import type { Command } from 'commander';
import { ImagegateError } from '../../src/errors.js';
import { parsePlatform } from '../../src/image/descriptor.js';
import { checkKeyAccess, hostPlatform } from '../../src/ops/check-access.js';
import { repositoryOf, withSource } from '../../src/transport/transports.js';
import { collect, info } from '../run.js';
import { loadKeys } from '../recipients.js';
import { unpackImage } from '../../src/ops/unpack-image.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { decryptionKeyring } from '../keyring.js';
import { parseByteSize } from '../../src/util/size.js';
import { DEFAULT_MAX_UNPACKED_BYTES } from '../../src/unpack/unpacked-size-limit.js';

/** The default limit as --help shows it. */
const DEFAULT_MAX_UNPACKED_SIZE = `${DEFAULT_MAX_UNPACKED_BYTES / 1024 ** 3}G`;

interface InitFlags extends TransferFlags {
  check?: boolean;
  unpack?: string;
  paths?: string;
  key: string[];
  vault?: boolean;
  all?: boolean;
  platform?: string;
  maxUnpackedSize: string;
  keepSpecialBits?: boolean;
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
    .option('--unpack <dir>', 'pod model: decrypt, verify and unpack the encrypted layers into DIR')
    .option('--paths <list>', 'with --unpack: comma-separated image paths the layers may write (e.g. app,etc/app)')
    .option('--all', 'with --unpack: unpack every layer, not only the encrypted ones')
    .option('-k, --key <file>', 'with --unpack: private key for jwe-wrapped layers; repeatable', collect, [])
    .option('--vault', 'with --unpack: unwrap Vault-wrapped layer keys (default when VAULT_ADDR is set)')
    .option('--max-unpacked-size <size>', 'with --unpack: the most the layers may decompress to, all together (e.g. 8G); more is refused and nothing is written', DEFAULT_MAX_UNPACKED_SIZE)
    .option('--keep-special-bits', 'with --unpack: keep setuid, setgid and sticky bits of unpacked files (dropped by default)')
    .option('-p, --platform <os/arch[/variant]>', "the pod's platform (default: this machine's)");
  addTransferOptions(command, false).action(async (images: string[], flags: InitFlags) => {
    const platform = flags.platform !== undefined ? parsePlatform(flags.platform) : hostPlatform();
    const transfer = await transferSettings({ ...flags, quiet: true }, 'init');
    if (flags.unpack !== undefined) {
      if (images.length !== 1) throw new ImagegateError('USAGE', '--unpack takes exactly one image');
      const image = images[0]!;
      const useVault = flags.vault === true || (flags.key.length === 0 && (process.env.VAULT_ADDR ?? process.env.BAO_ADDR) !== undefined);
      const keyring = await decryptionKeyring(await loadKeys(flags.key), { services: useVault, repository: repositoryOf(image) });
      const allowedPaths = (flags.paths ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
      if (allowedPaths.length === 0) throw new ImagegateError('USAGE', '--unpack needs --paths: the image paths the layers may write (the webhook passes the declared ones)');
      const maxUnpackedBytes = parseByteSize(flags.maxUnpackedSize, '--max-unpacked-size');
      const keepSpecialBits = flags.keepSpecialBits === true;
      const started = performance.now();
      const r = await withSource(
        image,
        (source) =>
          unpackImage(source, { platform, into: flags.unpack!, allowedPaths, encryptedOnly: flags.all !== true, keyring, maxUnpackedBytes, keepSpecialBits }),
        transfer.source,
      );
      const seconds = (performance.now() - started) / 1000;
      info(`imagegate init: ${image}${r.platform !== undefined ? ` ${r.platform}` : ''}: ${r.layers} layer(s) verified and unpacked into ${flags.unpack}: ${r.entries} entries, ${r.bytes} bytes in ${seconds.toFixed(2)} s`);
      return;
    }
    if (flags.check !== true) throw new ImagegateError('USAGE', 'imagegate init needs --check (node model) or --unpack DIR (pod model)');
    const keyring = await decryptionKeyring([], { services: true, repository: undefined });
    // Every image at once: their Transit calls share one batch per key.
    const results = await Promise.all(
      images.map((image) => withSource(image, (source) => checkKeyAccess(source, platform, keyring.forRepository(repositoryOf(image))), transfer.source)),
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
