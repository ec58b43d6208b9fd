import { Option, type Command } from 'commander';
import type { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { ImagegateError } from '../src/errors.js';

/**
 * skopeo's spelling of flags imagegate also has, so a command line moved from `skopeo copy` works unchanged
 * (`--encryption-key jwe:k.pem`, `--encrypt-layer -1`, `--tls-verify`), and skopeo flags whose meaning differs from
 * anything here answered with what to type instead, rather than commander's "unknown option" or a silent
 * re-interpretation. Aliases are hidden from --help; the flag they stand for says "(skopeo: …)".
 */

/**
 * `flags` (e.g. `--encryption-key <scheme:value>`) passes each value to the option named `target` (its long name
 * without dashes), as if that had been given; `split` turns one value into several (skopeo's comma lists).
 */
export function addAlias(command: Command, flags: string, target: string, split: (value: string) => string[] = (v) => [v]): void {
  const alias = new Option(flags).hideHelp();
  command.addOption(alias);
  // A Command is an EventEmitter (its typings declare only `on`); emitting the target's event runs the target's own
  // parsing and collecting, exactly as if it had been typed.
  const events = command as unknown as EventEmitter;
  command.on(`option:${alias.name()}`, (value: string) => {
    for (const one of split(value)) events.emit(`option:${target}`, one);
  });
}

/** skopeo's IntSlice syntax: `--encrypt-layer 0,-1` as well as the flag repeated. */
export function commaList(value: string): string[] {
  return value.split(',').map((v) => v.trim());
}

/**
 * skopeo's `--decryption-key FILE[:PASSWORD]` as `--key FILE`. The password form unlocks a passphrase-protected key,
 * which imagegate does not read; that is said here, without echoing the password. A file whose name holds ':' is
 * still a file.
 */
export function decryptionKeyFile(value: string): string[] {
  if (value.startsWith('provider:')) {
    throw new ImagegateError('USAGE', '--decryption-key provider:…: imagegate is itself the key provider; to unwrap Vault-wrapped layer keys, pass --vault');
  }
  const colon = value.indexOf(':');
  if (colon >= 0 && !existsSync(value)) {
    const file = value.slice(0, colon);
    throw new ImagegateError(
      'USAGE',
      `--decryption-key ${file}:…: imagegate does not read passphrase-protected keys; export the key without one (openssl pkey -in ${file} -out plain.pem), keep that file protected, and pass --key plain.pem`,
    );
  }
  return [value];
}

/** A skopeo flag with no counterpart here: refused, at parse time, with `remedy`. */
export function addRefusedFlag(command: Command, flags: string, remedy: string): void {
  const option = new Option(flags).hideHelp();
  command.addOption(
    option.argParser(() => {
      throw new ImagegateError('USAGE', `${option.long} is skopeo's; ${remedy}`);
    }),
  );
  if (option.isBoolean()) {
    command.on(`option:${option.name()}`, () => {
      throw new ImagegateError('USAGE', `${option.long} is skopeo's; ${remedy}`);
    });
  }
}

/**
 * skopeo's `--tls-verify[=BOOL]` (and `--src-`/`--dest-tls-verify`). True is what imagegate always does and is
 * accepted; false (skip certificate checks and allow plain HTTP) is not offered, and the answer says what is.
 */
export function addTlsVerify(command: Command, flags: string): void {
  const option = new Option(`${flags} [bool]`).hideHelp();
  command.addOption(
    option.argParser((value: string) => {
      if (value === 'true') return true;
      if (value === 'false') {
        throw new ImagegateError(
          'USAGE',
          `${option.long}=false: imagegate always verifies registry certificates; did you mean --ca-cert FILE (trust the CA that signed the registry's certificate), or --insecure / --insecure-registry HOST:PORT (plain HTTP to a registry on this machine)?`,
        );
      }
      throw new ImagegateError('USAGE', `${option.long} takes true or false (--tls-verify=false), got ${JSON.stringify(value)}`);
    }),
  );
}
