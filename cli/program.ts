/**
 * The imagegate command line: every subcommand, the help text, and the run that turns failures into exit codes.
 * Loaded by the entry point (imagegate.ts) only once it knows this Node.js can run it.
 */
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

function buildProgram(): Command {
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

Exit codes: 0 ok, 1 internal error (please report it), 2 usage (a flag, a policy file, a certificate and key
that do not match, a port in use), 3 bad or missing image (or an image path naming the wrong kind of file), 4 key
problem (unusable key or recipient scheme, no matching key), 5 integrity failure (tampered layer), 6 destination or
I/O failure (a full disk is reported with its path and free space), 7 authentication or permission (registry or
Vault), 8 registry unreachable or failing, 9 Vault unreachable, sealed or failing, 10 audit flagged an image,
webhook review denied an object or rewrap left a tag on the old image, 11 webhook review could not decide an
object, 130 interrupted. Errors are explained in docs/troubleshooting.md.

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

/** Runs the CLI on `argv` (as in process.argv) and sets the process's exit code from the outcome. */
export async function runCli(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (e) {
    process.exitCode = reportFailure(e);
  }
}
