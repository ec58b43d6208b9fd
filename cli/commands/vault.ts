import type { Command } from 'commander';
import { ImagegateError } from '../../src/errors.js';
import { vaultSettingsFromEnv } from '../../src/vault/settings.js';
import { applySetup, formatPlan, planSetup } from '../../src/vault/setup/apply.js';
import { generatePolicies, generateSetup } from '../../src/vault/setup/generate.js';
import { loadVaultSetupFile } from '../../src/vault/setup/load-setup.js';
import { writePolicyFiles } from '../../src/vault/setup/policy-files.js';
import { VaultSession } from '../../src/vault/vault-session.js';
import { info } from '../run.js';

interface SetupFlags {
  file: string;
  dryRun?: boolean;
  writePolicies?: string;
  policiesOnly?: boolean;
}

export function registerVault(program: Command): void {
  const vault = program.command('vault').summary('set up Vault for imagegate: Transit keys, policies, auth roles');
  vault
    .command('setup')
    .summary('create or update Transit keys, policies and auth roles from a setup document (idempotent)')
    .description(
      'Reads a VaultSetup document (deploy/vault/setup.example.yaml), compares it with what Vault has (mounts,\n' +
        'Transit keys, ACL policies, JWT/Kubernetes/AppRole auth configs and roles) and writes only what differs.\n' +
        'Prints one line per item (created, updated or unchanged, and why) and a summary; a second run changes\n' +
        'nothing. Needs an admin token: VAULT_ADDR (or BAO_ADDR) and VAULT_TOKEN (or any IMAGEGATE_VAULT_AUTH login).',
    )
    .requiredOption('-f, --file <setup.yaml>', 'the setup document')
    .option('--dry-run', 'read Vault and print the plan; write nothing to Vault')
    .option('--write-policies <dir>', 'also write the generated policies as DIR/NAME.hcl')
    .option('--policies-only', 'with --write-policies: only write the HCL files; do not contact Vault')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=… imagegate vault setup -f setup.yaml --dry-run\n' +
        '  imagegate vault setup -f setup.yaml\n' +
        '  imagegate vault setup -f setup.yaml --write-policies deploy/vault/policies --policies-only',
    )
    .action(async (flags: SetupFlags) => {
      if (flags.policiesOnly === true && flags.writePolicies === undefined) throw new ImagegateError('USAGE', '--policies-only needs --write-policies DIR');
      const setup = await loadVaultSetupFile(flags.file);
      if (flags.writePolicies !== undefined) {
        for (const file of await writePolicyFiles(flags.writePolicies, generatePolicies(setup))) info(`wrote ${file}`);
        if (flags.policiesOnly === true) return;
      }
      const session = new VaultSession(await vaultSettingsFromEnv());
      const plan = await planSetup(session, generateSetup(setup));
      const dryRun = flags.dryRun === true;
      if (!dryRun) await applySetup(session, plan);
      process.stdout.write(formatPlan(plan, { dryRun, source: flags.file }));
    });
}
