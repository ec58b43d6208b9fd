import type { Command } from 'commander';
import { inspectImage, type InspectReport } from '../../src/ops/inspect.js';
import { withSource } from '../../src/transport/transports.js';
import { jsonDocument } from '../json-output.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';

export function registerInspect(program: Command): void {
  const command = program
    .command('inspect')
    .summary('show which layers are encrypted, with which schemes and recipients (no key needed)')
    .argument('<image>', 'docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]')
    .option('--json', 'print the report as JSON (docs/json-output.md)');
  addTransferOptions(command, false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagegate inspect docker://registry.example/app:1.0-enc\n  imagegate inspect oci:./app:1.0-enc\n  imagegate inspect --json oci-archive:app-enc.tar | jq .images[].layers',
    )
    .action(async (image: string, flags: TransferFlags & { json?: boolean }) => {
      const transfer = await transferSettings({ ...flags, quiet: true }, 'inspect');
      const report = await withSource(image, inspectImage, transfer.source);
      process.stdout.write(flags.json ? jsonDocument('InspectReport', report) : formatReport(report));
    });
}

export function formatReport(r: InspectReport): string {
  const lines = [`${r.image}`, `  ${r.mediaType} ${r.digest}`];
  for (const img of r.images) {
    const encrypted = img.layers.filter((l) => l.encrypted).length;
    lines.push('', `${img.platform ?? 'image'} ${img.digest}: ${encrypted} of ${img.layers.length} layer(s) encrypted`);
    for (const l of img.layers) {
      const schemes = l.schemes
        .map((s) => {
          const who = s.recipients.map((x) => (x.detail !== undefined ? `${x.algorithm} ${x.detail}` : x.algorithm)).join(', ');
          return who === '' ? s.scheme : `${s.scheme}[${who}]`;
        })
        .join(' ');
      lines.push(`  ${String(l.index).padStart(2)}  ${l.encrypted ? 'encrypted' : 'plain    '}  ${l.digest}  ${String(l.size).padStart(12)}  ${l.mediaType}${schemes !== '' ? `  ${schemes}` : ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
