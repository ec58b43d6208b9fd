import type { Command } from 'commander';
import { runQuickstart } from '../../src/demo/quickstart.js';
import { info } from '../run.js';
import { formatReport } from './inspect.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('quick start: build a sample image, encrypt it for two generated keys, inspect and decrypt it')
    .argument('[dir]', 'working directory for keys and images', 'imagegate-demo')
    .option('--force', 'replace what an earlier demo wrote in the directory (refused if it holds anything else)')
    .action(async (dir: string, flags: { force?: boolean }) => {
      const report = await runQuickstart(dir, info, { force: flags.force === true });
      info('');
      process.stdout.write(formatReport(report.encryptedReport));
      info('');
      info(`OK: every decrypted layer is byte-identical to the original. Keys and images are in ${dir}/.`);
      info(`Try: skopeo copy --decryption-key ${report.keys.rsa} ${report.encrypted} ${report.decrypted.replace(':1.0', '-skopeo:1.0')}`);
    });
}
