import type { Command } from 'commander';
import { auditRegistry, parseAuditTarget, parseMinVersions, type AuditReport } from '../../src/ops/audit.js';
import { EXIT_CODES } from '../../src/errors.js';
import { vaultSettingsFromEnv } from '../../src/vault/settings.js';
import { Transit } from '../../src/vault/transit.js';
import { VaultSession } from '../../src/vault/vault-session.js';
import { jsonDocument } from '../json-output.js';
import { collect } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';

interface AuditFlags extends TransferFlags {
  protect: string[];
  repositories: string[];
  minVersion: string[];
  vault?: boolean;
  json?: boolean;
}

export function registerAudit(program: Command): void {
  const command = program
    .command('audit')
    .summary('report which images in a registry are encrypted, with which Vault keys and versions')
    .description(
      'Lists every tag of a registry (or of one repository): encrypted layers, schemes, Vault key, key version and\n' +
        'binding, and the creation time from the config. Flags plaintext images in --protect repositories, key\n' +
        'versions below --min-version, and (with --vault) versions Vault no longer decrypts. Reads no layers.\n' +
        'A repository, tag or image that cannot be read (an interrupted push leaves one) is a flagged row with the reason:\n' +
        'unreadable-repository, unreadable-manifest or unreadable-image; the audit goes on.',
    )
    .argument('<target>', 'HOST[:PORT] for the whole registry, or [docker://]HOST/REPO[:TAG]')
    .option('--repositories <glob>', 'with a whole registry: only repositories whose path matches (team-0*/**); one shard of a large registry; repeatable', collect, [])
    .option('--protect <glob>', 'repositories (HOST/PATH; * within a segment, ** across) whose images must be encrypted; repeatable', collect, [])
    .option('--min-version <[mount/keys/name=]n>', 'lowest acceptable Transit key version, for one key or all; repeatable', collect, [])
    .option('--vault', 'read key versions from Vault (VAULT_ADDR…) to flag layer keys below min_decryption_version')
    .option('--json', 'print the report as JSON (docs/json-output.md)');
  addTransferOptions(command, false).action(async (target: string, flags: AuditFlags) => {
    const scope = parseAuditTarget(target);
    const minVersions = parseMinVersions(flags.minVersion);
    const transfer = await transferSettings({ ...flags, quiet: true }, 'audit');
    const transit = flags.vault === true ? new Transit(new VaultSession(await vaultSettingsFromEnv())) : undefined;
    const report = await auditRegistry(scope, transfer.source.registry ?? {}, {
      protected: flags.protect,
      repositories: flags.repositories,
      minVersions,
      ...(transit !== undefined ? { keyInfo: (k) => transit.readKey(k) } : {}),
    });
    process.stdout.write(flags.json === true ? jsonDocument('AuditReport', report) : formatAudit(report));
    if (report.images.some((i) => i.flags.length > 0)) process.exitCode = EXIT_CODES.FLAGGED;
  });
}

function formatAudit(r: AuditReport): string {
  const rows = [['IMAGE', 'PLATFORM', 'MANIFEST', 'CREATED', 'ENCRYPTED', 'SCHEMES', 'VAULT KEYS', 'FLAGS']];
  for (const i of r.images) {
    rows.push([
      `${i.repository}:${i.tags.join(',')}`,
      i.platform ?? '-',
      i.manifest?.slice(0, 19) ?? '-',
      i.created ?? '-',
      `${i.encryptedLayers}/${i.layers}`,
      i.schemes.join(',') || '-',
      i.vaultKeys.map((k) => `${k.key} v${k.version}`).join(',') || '-',
      // What could not be read says why, in the last column, where a long message breaks no alignment.
      `${i.flags.join(' ') || '-'}${i.problem !== undefined ? `: ${i.problem}` : ''}`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return `${rows.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n')}\n`;
}
