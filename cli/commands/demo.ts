import type { Command } from 'commander';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { ImagegateError, systemErrorCode } from '../../src/errors.js';
import { runQuickstart } from '../../src/ops/quickstart.js';
import { info } from '../run.js';
import { formatReport } from './inspect.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('quick start: build a sample image, encrypt it for two generated keys, inspect and decrypt it')
    .argument('[dir]', 'working directory for keys and images', 'imagegate-demo')
    .option('--force', 'remove the directory first if it exists')
    .action(async (dir: string, flags: { force?: boolean }) => {
      if (flags.force) await rm(dir, { recursive: true, force: true });
      try {
        if ((await readdir(dir)).length > 0) {
          throw new ImagegateError('DESTINATION', `${dir} already exists and is not empty; pass --force to start over or name another directory`);
        }
      } catch (e) {
        if (systemErrorCode(e) !== 'ENOENT') throw e;
      }
      await mkdir(dir, { recursive: true });
      const report = await runQuickstart(dir, info);
      info('');
      process.stdout.write(formatReport(report.encryptedReport));
      info('');
      if (!report.roundTripIdentical) {
        throw new ImagegateError('INTEGRITY', 'the decrypted layers differ from the original ones; this is a bug, please report it');
      }
      info(`OK: every decrypted layer is byte-identical to the original. Keys and images are in ${dir}/.`);
      info(`Try: skopeo copy --decryption-key ${report.keys.rsa} ${report.encrypted} ${report.decrypted.replace(':1.0', '-skopeo:1.0')}`);
    });
}
