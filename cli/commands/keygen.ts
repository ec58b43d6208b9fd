import type { Command } from 'commander';
import { generateKeyPairFiles } from '../../src/crypto/keygen.js';
import { info } from '../run.js';

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .summary('create a local key pair for a first run (PRIVATE.pem and PRIVATE.pub.pem)')
    .description('Create a key pair: the private key as PKCS#8 PEM (mode 0600), the public key as SPKI PEM; both formats skopeo reads too.')
    .option('-o, --out <prefix>', 'path prefix of the files to write', 'imagegate-key')
    .option('-t, --type <type>', 'ec (ECDH-ES+A256KW) or rsa (RSA-OAEP)', 'ec')
    .option('--curve <curve>', 'for ec: P-256, P-384 or P-521', 'P-256')
    .option('--bits <bits>', 'for rsa: 2048, 3072 or 4096', '3072')
    .option('--force', 'overwrite existing files')
    .addHelpText('after', '\nExamples:\n  imagegate keygen --out team        # team.pem, team.pub.pem\n  imagegate keygen --type rsa --bits 4096 --out ci')
    .action(async (flags: { out: string; type: string; curve: string; bits: string; force?: boolean }) => {
      const files = await generateKeyPairFiles(flags.out, {
        type: flags.type,
        curve: flags.curve,
        bits: Number(flags.bits),
        overwrite: flags.force === true,
      });
      info(`wrote private key ${files.privateKey} (keep it secret) and public key ${files.publicKey}`);
      info(`encrypt with: imagegate encrypt SRC DST --recipient jwe:${files.publicKey}`);
      info(`decrypt with: imagegate decrypt SRC DST --key ${files.privateKey}`);
    });
}
