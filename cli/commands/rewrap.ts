import type { Command } from 'commander';
import { ImagegateError, EXIT_CODES } from '../../src/errors.js';
import { canonicalRepositoryName } from '../../src/image/reference.js';
import { catalogTargets, rewrapRepository } from '../../src/ops/rewrap.js';
import { parseTransportReference } from '../../src/transport/transports.js';
import { collect, info } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { decryptionKeyring } from '../keyring.js';

interface RewrapFlags extends TransferFlags {
  bind?: string;
  repositories: string[];
  newTagSuffix?: string;
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
    .option('--repositories <glob>', "rewrap every repository of each registry's catalog whose path matches (team-0*/**): one shard of a large registry; repeatable", collect, [])
    .option('--new-tag-suffix <suffix>', 'where the registry refuses to move a tag (immutable tags), push the rewrapped image as TAG+SUFFIX too (e.g. -rewrapped)')
    .addHelpText(
      'after',
      '\nA registry with immutable tags keeps such a tag on the old image (it decrypts until the old key version is\n' +
        'retired); the rewrapped image is pushed by digest, and the tag is reported. Exit codes: 0 done, 10 a tag could not\n' +
        'be moved and no --new-tag-suffix was given, otherwise as for other commands.',
    );
  addTransferOptions(command, false).action(async (images: string[], flags: RewrapFlags) => {
    // The flags first: a typo is reported before a password is asked for or read.
    if (flags.newTagSuffix !== undefined && !/^[\w.-]{1,64}$/.test(flags.newTagSuffix)) {
      throw new ImagegateError('USAGE', `--new-tag-suffix ${JSON.stringify(flags.newTagSuffix)}: a tag suffix is letters, digits, '_', '.' and '-' (for example -rewrapped)`);
    }
    const named = flags.repositories.length > 0 ? undefined : images.map((text) => {
      const r = parseTransportReference(text);
      if (r.transport !== 'docker') throw new ImagegateError('USAGE', `rewrap works on registry images (docker://HOST/REPO[:TAG]), not ${text}`);
      if (r.reference.digest !== undefined) throw new ImagegateError('USAGE', `${text}: name a tag or a whole repository; a digest cannot be moved to a rewrapped image`);
      return r.reference;
    });
    const transfer = await transferSettings({ ...flags, quiet: true }, 'rewrap');
    const registry = transfer.source.registry ?? {};
    const refs = named ?? (await catalogTargets(images, registry, flags.repositories));
    const keyring = await decryptionKeyring([], { services: true, repository: undefined });
    let stuck = 0;
    for (const ref of refs) {
      await rewrapRepository(
        ref,
        registry,
        {
          keyring,
          ...(flags.bind !== undefined ? { bindTo: canonicalRepositoryName(flags.bind) } : {}),
          ...(flags.newTagSuffix !== undefined ? { newTagSuffix: flags.newTagSuffix } : {}),
        },
        (r) => {
          const repo = `docker://${ref.domain}/${ref.path}`;
          const name = `${repo}:${r.tags.join(',')}`;
          info(r.rewrapped === 0 ? `${name}: no Vault-wrapped key to move (none, or all at the latest version and binding); nothing written` : `${name}: rewrapped ${r.rewrapped} layer key(s); ${r.before} -> ${r.after}`);
          for (const k of r.kept) {
            const instead = r.added.includes(`${k.tag}${flags.newTagSuffix ?? ''}`) ? `pushed as ${repo}:${k.tag}${flags.newTagSuffix}` : `pushed only as ${repo}@${r.after} (add --new-tag-suffix to tag it)`;
            info(`${repo}:${k.tag}: the registry refused to move this tag (immutable?), so it still names ${r.before}; the rewrapped image is ${instead}. The registry said: ${k.reason}`);
          }
          if (r.kept.length > r.added.length) stuck++;
          process.stdout.write(`${name} ${r.after}\n`);
        },
      );
    }
    if (stuck > 0) {
      info(`${stuck} image(s) keep a tag on the old key version: deploy them by digest or re-run with --new-tag-suffix before retiring that version`);
      process.exitCode = EXIT_CODES.FLAGGED;
    }
  });
}
