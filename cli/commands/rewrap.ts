import type { Command } from 'commander';
import { ImagegateError } from '../../src/errors.js';
import { canonicalRepositoryName } from '../../src/image/reference.js';
import { catalogTargets, rewrapRepository } from '../../src/ops/rewrap.js';
import { parseTransportReference } from '../../src/transport/transports.js';
import { collect, info } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { vaultLayerKeysFromEnv } from '../vault.js';

interface RewrapFlags extends TransferFlags {
  bind?: string;
  repositories: string[];
}

export function registerRewrap(program: Command): void {
  const command = program
    .command('rewrap')
    .summary("move images' Vault-wrapped layer keys to the Transit key's latest version, without re-pushing layers")
    .description(
      'After `transit/keys/KEY/rotate`, rewraps every Vault-wrapped layer key of the named images with Transit rewrap\n' +
        '(one batch per image; plaintext keys never leave Vault) and pushes the new manifests. No layer is uploaded.\n' +
        'A repository without a tag means every tag in it. Then raise min_decryption_version to retire the old version.',
    )
    .argument('<image...>', 'docker://HOST/REPO[:TAG] (without a tag: every tag); with --repositories, registries HOST[:PORT]')
    .option('--bind <host/repo>', 'also re-bind the keys to this repository (promotion; needs decrypt rights on the key)')
    .option('--repositories <glob>', "rewrap every repository of each registry's catalog whose path matches (team-0*/**): one shard of a large registry; repeatable", collect, []);
  addTransferOptions(command, false).action(async (images: string[], flags: RewrapFlags) => {
    const transfer = await transferSettings({ ...flags, quiet: true }, 'rewrap');
    const registry = transfer.source.registry ?? {};
    const refs = flags.repositories.length > 0 ? await catalogTargets(images, registry, flags.repositories) : images.map((text) => {
      const r = parseTransportReference(text);
      if (r.transport !== 'docker') throw new ImagegateError('USAGE', `rewrap works on registry images (docker://HOST/REPO[:TAG]), not ${text}`);
      if (r.reference.digest !== undefined) throw new ImagegateError('USAGE', `${text}: name a tag or a whole repository; a digest cannot be moved to a rewrapped image`);
      return r.reference;
    });
    const vault = await vaultLayerKeysFromEnv();
    for (const ref of refs) {
      await rewrapRepository(
        ref,
        registry,
        { vault, ...(flags.bind !== undefined ? { bindTo: canonicalRepositoryName(flags.bind) } : {}) },
        (r) => {
          const name = `docker://${ref.domain}/${ref.path}:${r.tags.join(',')}`;
          info(r.rewrapped === 0 ? `${name}: no Vault-wrapped key to move (none, or all at the latest version and binding); nothing written` : `${name}: rewrapped ${r.rewrapped} layer key(s); ${r.before} -> ${r.after}`);
          process.stdout.write(`${name} ${r.after}\n`);
        },
      );
    }
  });
}
