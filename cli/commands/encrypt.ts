import type { Command } from 'commander';
import { parsePlatform } from '../../src/image/descriptor.js';
import { encryptImage } from '../../src/ops/encrypt.js';
import { podModelSettings } from '../../src/pod-model/plain-base.js';
import { parseLayerIndex } from '../../src/ops/layer-selection.js';
import { canonicalRepositoryName } from '../../src/image/reference.js';
import { interruptedWriteLeaves, openDestination, repositoryOf, withSource } from '../../src/transport/transports.js';
import { describeSweptStaging } from '../../src/transport/staging-sweep.js';
import { loadRecipients } from '../recipients.js';
import { collect, interruptSignal } from '../run.js';
import { endProgress, note, type ProgressReporter } from '../progress.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { addAlias, commaList } from '../skopeo-flags.js';

interface EncryptFlags extends TransferFlags {
  recipient: string[];
  bind?: string;
  plainBase?: string;
  paths?: string;
  layer: string[];
  platform: string[];
}

export function registerEncrypt(program: Command): void {
  const command = program
    .command('encrypt')
    .summary('encrypt the layers of an image for one or more recipients')
    .description(
      'Encrypt image layers with ocicrypt AES_256_CTR_HMAC_SHA256 and wrap each layer key for every recipient.\n' +
        'The result decrypts with skopeo, buildah, containerd imgcrypt and CRI-O (ocicrypt) as well as with imagegate (tested: see the README).',
    )
    .argument('<source>', 'image to encrypt: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]')
    .argument('<destination>', 'where to write the encrypted image: docker://HOST/REPO[:TAG], oci:DIR[:TAG] or oci-archive:FILE[:TAG]')
    .option(
      '-r, --recipient <scheme:value>',
      "who can decrypt: jwe:PUBLIC_KEY (PEM, DER or JWK; RSA or EC), or vault:[MOUNT/]KEY (a Vault Transit key; Vault settings from VAULT_ADDR etc.); repeatable (skopeo's --encryption-key)",
      collect,
      [],
    )
    .option('--bind <host/repo>', 'repository Vault-wrapped keys are bound to (default: the docker:// destination)')
    .option('--plain-base <image>', 'pod model: keep the layers of this registry image (the base the image was built FROM) plain, and encrypt the rest')
    .option('--paths <list>', "pod model: comma-separated image paths the encrypted layers write (refused if they write elsewhere or delete base files)")
    .option('-l, --layer <index>', "encrypt only this layer: 0 = bottom, -1 = top; repeatable (default: all layers; skopeo's --encrypt-layer 0,-1)", collect, [])
    .option('-p, --platform <os/arch[/variant]>', 'encrypt only this platform of a multi-platform image; repeatable (others are kept as they are)', collect, [])
    .option('-q, --quiet', 'print only the digest of the result');
  addAlias(command, '--encryption-key <scheme:value>', 'recipient');
  addAlias(command, '--encrypt-layer <indexes>', 'layer', commaList);
  addTransferOptions(command, true)
    .addHelpText(
      'after',
      `
Examples:
  imagegate encrypt docker://registry.example/app:1.0 docker://registry.example/app:1.0-enc -r jwe:team.pub.pem
  imagegate encrypt oci:./app:1.0 oci:./app:1.0-enc --recipient jwe:team.pub.pem
  imagegate encrypt oci:./app:1.0 oci-archive:app-enc.tar -r jwe:a.pub.pem -r jwe:b.jwk --layer -1
  imagegate encrypt docker-archive:saved.tar:app:1.0 oci:./enc:1.0 -r jwe:team.pub.pem --platform linux/amd64`,
    )
    .action(async (src: string, dst: string, flags: EncryptFlags) => {
      // First: a Ctrl-C from here on removes whatever gets staged.
      // The notice goes through the progress reporter once there is one (set below).
      let progress: ProgressReporter | undefined;
      const signal = interruptSignal(interruptedWriteLeaves(dst), (text) => note(progress, text));
      const layers = flags.layer.length > 0 ? flags.layer.map(parseLayerIndex) : undefined;
      const platforms = flags.platform.map(parsePlatform);
      const recipients = await loadRecipients(flags.recipient, flags.bind !== undefined ? canonicalRepositoryName(flags.bind) : repositoryOf(dst));
      const transfer = await transferSettings(flags, 'encrypt');
      progress = transfer.progress;
      const result = await endProgress(
        withSource(
          src,
          async (source) => {
            const pod =
              flags.plainBase !== undefined
                ? await withSource(flags.plainBase, (base) => podModelSettings(source, base, repositoryOf(flags.plainBase!), (flags.paths ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '')), transfer.source)
                : undefined;
            return encryptImage(source, await openDestination(dst, { ...transfer.destination, onStaleStagingRemoved: (swept) => note(progress, describeSweptStaging(swept)) }), {
              ...(pod !== undefined ? { pod } : {}),
              recipients,
              layers,
              platforms,
              platform: platforms[0],
              signal,
              onSkip: flags.quiet ? undefined : (label, reason) => note(transfer.progress, `skipped ${label}: ${reason}`),
              ...transfer.copy,
            });
          },
          transfer.source,
        ),
        transfer.progress,
      );
      if (!flags.quiet) note(transfer.progress, `encrypted ${result.rewrittenLayers} layer(s); wrote ${dst}`);
      transfer.progress?.result({ ok: true, fields: { digest: result.root.digest, destination: dst, rewrittenLayers: result.rewrittenLayers } });
      process.stdout.write(`${result.root.digest}\n`);
    });
}
