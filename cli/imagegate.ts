#!/usr/bin/env node
import { Command } from 'commander';
import { registerDecrypt } from './commands/decrypt.js';
import { registerDemo } from './commands/demo.js';
import { registerEncrypt } from './commands/encrypt.js';
import { registerInspect } from './commands/inspect.js';
import { registerKeygen } from './commands/keygen.js';
import { registerKeyprovider } from './commands/keyprovider.js';
import { registerRewrap } from './commands/rewrap.js';
import { registerAudit } from './commands/audit.js';
import { registerWebhook } from './commands/webhook.js';
import { registerInit } from './commands/init.js';
import { registerVault } from './commands/vault.js';
import { reportFailure } from './run.js';

export function buildProgram(): Command {
  const program = new Command('imagegate')
    .description('Encrypt container images with ocicrypt-compatible layer encryption, and decrypt and inspect them.')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Images are named as in skopeo: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG],
docker-archive:FILE[:NAME:TAG].

Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad or missing image, 4 key problem (unusable key, no matching
key), 5 integrity failure (tampered layer), 6 destination or I/O failure, 7 authentication or permission (registry
or Vault), 8 registry unreachable or failing, 9 Vault unreachable, sealed or failing, 10 audit flagged an image or
webhook review saw a denial, 130 interrupted. Errors are explained in docs/troubleshooting.md.

Quick start:
  imagegate demo                      # builds, encrypts, inspects and decrypts a sample image
  imagegate keygen --out team
  imagegate encrypt oci:./app:1.0 oci:./app:1.0-enc --recipient jwe:team.pub.pem
  imagegate decrypt oci:./app:1.0-enc oci:./app-plain:1.0 --key team.pem`,
    );
  registerEncrypt(program);
  registerDecrypt(program);
  registerInspect(program);
  registerKeygen(program);
  registerKeyprovider(program);
  registerRewrap(program);
  registerAudit(program);
  registerWebhook(program);
  registerInit(program);
  registerVault(program);
  registerDemo(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  process.exitCode = reportFailure(e);
}
