import type { Command } from 'commander';
import { parsePlatform } from '../../src/image/descriptor.js';
import { decryptImage } from '../../src/ops/decrypt.js';
import { parseLayerIndex } from '../../src/ops/layer-selection.js';
import { interruptedWriteLeaves, openDestination, repositoryOf, withSource } from '../../src/transport/transports.js';
import { describeSweptStaging } from '../../src/transport/staging-sweep.js';
import { decryptionKeyring } from '../keyring.js';
import { loadKeys } from '../recipients.js';
import { collect, interruptSignal } from '../run.js';
import { endProgress, note, type ProgressReporter } from '../progress.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { addAlias, decryptionKeyFile } from '../skopeo-flags.js';

interface DecryptFlags extends TransferFlags {
  key: string[];
  vault?: boolean;
  layer: string[];
  platform: string[];
}

export function registerDecrypt(program: Command): void {
  const command = program
    .command('decrypt')
    .summary('decrypt the encrypted layers of an image')
    .description(
      'Decrypt every encrypted layer with the given private keys. Each layer key is unwrapped before anything is\n' +
        'written and each layer is verified (HMAC) while it streams; the destination is written only when every\n' +
        'layer verified, so a wrong key or a tampered layer leaves nothing behind.',
    )
    .argument('<source>', 'encrypted image: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG]')
    .argument('<destination>', 'where to write the plain image: docker://HOST/REPO[:TAG], oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]')
    .option('-k, --key <file>', "private key (PEM PKCS#8/PKCS#1/SEC1, DER or JWK); repeatable, each is tried (skopeo's --decryption-key)", collect, [])
    .option('--vault', 'unwrap Vault-wrapped layer keys through Vault Transit (settings from VAULT_ADDR, VAULT_TOKEN or IMAGEGATE_VAULT_AUTH…)')
    .option('-l, --layer <index>', 'decrypt only this layer (0 = bottom, -1 = top); repeatable', collect, [])
    .option('-p, --platform <os/arch[/variant]>', 'decrypt only this platform; repeatable', collect, [])
    .option('-q, --quiet', 'print only the digest of the result');
  addAlias(command, '--decryption-key <file>', 'key', decryptionKeyFile);
  addTransferOptions(command, true)
    .addHelpText(
      'after',
      `
Examples:
  imagegate decrypt docker://registry.example/app:1.0-enc oci:./app-plain:1.0 --key team.pem
  imagegate decrypt oci:./app:1.0-enc oci:./app-plain:1.0 --key team.pem
  imagegate decrypt oci-archive:app-enc.tar docker-archive:app.tar:app:1.0 -k a.pem -k b.jwk`,
    )
    .action(async (src: string, dst: string, flags: DecryptFlags) => {
      // First: a Ctrl-C from here on removes whatever gets staged.
      // The notice goes through the progress reporter once there is one (set below).
      let progress: ProgressReporter | undefined;
      const signal = interruptSignal(interruptedWriteLeaves(dst), (text) => note(progress, text));
      const layers = flags.layer.length > 0 ? flags.layer.map(parseLayerIndex) : undefined;
      const platforms = flags.platform.map(parsePlatform);
      const keyring = await decryptionKeyring(await loadKeys(flags.key), { services: flags.vault === true, repository: repositoryOf(src) });
      const transfer = await transferSettings(flags, 'decrypt');
      progress = transfer.progress;
      const result = await endProgress(
        withSource(
          src,
          async (source) =>
            decryptImage(source, await openDestination(dst, { ...transfer.destination, onStaleStagingRemoved: (swept) => note(progress, describeSweptStaging(swept)) }), {
              keyring,
              layers,
              platforms,
              platform: platforms[0],
              signal,
              ...transfer.copy,
            }),
          transfer.source,
        ),
        transfer.progress,
      );
      if (!flags.quiet) {
        note(transfer.progress, result.rewrittenLayers === 0 ? `no encrypted layers to decrypt; copied to ${dst}` : `decrypted and verified ${result.rewrittenLayers} layer(s); wrote ${dst}`);
      }
      transfer.progress?.result({ ok: true, fields: { digest: result.root.digest, destination: dst, rewrittenLayers: result.rewrittenLayers } });
      process.stdout.write(`${result.root.digest}\n`);
    });
}
