/**
 * skopeo's flag spellings on imagegate's commands (issue 15): aliases put their values where the real flag would,
 * in order and with skopeo's comma lists; flags whose meaning differs are refused at parse time with what to type.
 * The commands are built by the real register functions, so these are the flags users get.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerDecrypt } from '../../../cli/commands/decrypt.js';
import { registerEncrypt } from '../../../cli/commands/encrypt.js';
import { registerInspect } from '../../../cli/commands/inspect.js';
import { isImagegateError } from '../../../src/errors.js';

/** The flags `argv` parses to for `command`, without running it. */
function parsed(command: 'encrypt' | 'decrypt' | 'inspect', argv: string[]): Record<string, unknown> {
  const program = new Command('imagegate').exitOverride();
  if (command === 'encrypt') registerEncrypt(program);
  else if (command === 'decrypt') registerDecrypt(program);
  else registerInspect(program);
  const sub = program.commands.find((c) => c.name() === command)!;
  sub.exitOverride().action(() => {});
  program.parse(['node', 'imagegate', command, ...argv]);
  return sub.opts();
}

function refusal(command: 'encrypt' | 'decrypt' | 'inspect', argv: string[]): string {
  try {
    parsed(command, argv);
  } catch (e) {
    if (isImagegateError(e, 'USAGE')) return e.message;
    throw e;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

describe('aliases with the meaning of our own flags', () => {
  it('--encryption-key is --recipient, in the order given, mixed with -r', () => {
    const flags = parsed('encrypt', ['oci:a', 'oci:b', '--encryption-key', 'jwe:a.pem', '-r', 'jwe:b.pem', '--encryption-key', 'vault:transit/k']);
    expect(flags.recipient).toEqual(['jwe:a.pem', 'jwe:b.pem', 'vault:transit/k']);
  });

  it("--encrypt-layer is --layer, with skopeo's comma list and negative indexes", () => {
    expect(parsed('encrypt', ['oci:a', 'oci:b', '--encrypt-layer', '0,-1']).layer).toEqual(['0', '-1']);
    expect(parsed('encrypt', ['oci:a', 'oci:b', '--encrypt-layer', '-1', '--encrypt-layer', '2', '-l', '1']).layer).toEqual(['-1', '2', '1']);
  });

  it('--decryption-key is --key', () => {
    expect(parsed('decrypt', ['oci:a', 'oci:b', '--decryption-key', 'a.pem', '-k', 'b.pem']).key).toEqual(['a.pem', 'b.pem']);
  });

  it('--tls-verify and --tls-verify=true are what imagegate always does, and accepted', () => {
    expect(() => parsed('inspect', ['oci:a', '--tls-verify'])).not.toThrow();
    expect(() => parsed('encrypt', ['oci:a', 'oci:b', '--tls-verify=true', '--src-tls-verify=true', '--dest-tls-verify'])).not.toThrow();
  });

  it('--src-creds, --dest-creds and --authfile are our own flags, with the same syntax', () => {
    const flags = parsed('decrypt', ['oci:a', 'oci:b', '--src-creds', 'u:p', '--dest-creds', 'v:q', '--authfile', 'auth.json']);
    expect(flags).toMatchObject({ srcCreds: 'u:p', destCreds: 'v:q', authfile: 'auth.json' });
  });
});

describe('skopeo flags with another meaning are refused, saying what to type instead', () => {
  it('--tls-verify=false (skip certificate checks) points to --ca-cert and --insecure', () => {
    for (const flag of ['--tls-verify=false', '--src-tls-verify=false', '--dest-tls-verify=false']) {
      const message = refusal('encrypt', ['oci:a', 'oci:b', flag]);
      expect(message).toContain('imagegate always verifies registry certificates; did you mean --ca-cert FILE');
      expect(message).toContain('--insecure');
    }
    expect(refusal('inspect', ['oci:a', '--tls-verify', 'no'])).toContain('--tls-verify takes true or false');
  });

  it('--src-authfile / --dest-authfile point to --authfile; --cert-dir to --ca-cert', () => {
    expect(refusal('encrypt', ['oci:a', 'oci:b', '--dest-authfile', 'a.json'])).toBe(
      "--dest-authfile is skopeo's; did you mean --authfile FILE? imagegate reads one auth file for source and destination (or give --src-creds/--dest-creds)",
    );
    expect(refusal('inspect', ['oci:a', '--cert-dir', '/etc/certs'])).toContain('did you mean --ca-cert DIR/ca.crt?');
    expect(refusal('decrypt', ['oci:a', 'oci:b', '--src-cert-dir', '/etc/certs'])).toContain('did you mean --ca-cert DIR/ca.crt?');
  });

  it('--decryption-key FILE:PASSWORD says passphrase-protected keys are not read, without repeating the password', () => {
    const message = refusal('decrypt', ['oci:a', 'oci:b', '--decryption-key', 'team.pem:s3cret-pass']);
    expect(message).toContain('imagegate does not read passphrase-protected keys');
    expect(message).toContain('openssl pkey -in team.pem -out plain.pem');
    expect(message).not.toContain('s3cret-pass');
    expect(refusal('decrypt', ['oci:a', 'oci:b', '--decryption-key', 'provider:imagegate'])).toContain('pass --vault');
  });

  it('the aliases stay out of --help; the flags they stand for name them', () => {
    const program = new Command('imagegate');
    registerEncrypt(program);
    const help = program.commands.find((c) => c.name() === 'encrypt')!.helpInformation();
    expect(help).not.toMatch(/^\s+--(encryption-key|encrypt-layer|tls-verify|cert-dir|dest-authfile) /m);
    const text = help.replace(/\s+/g, ' ');
    expect(text).toContain("skopeo's --encryption-key");
    expect(text).toContain("skopeo's --encrypt-layer 0,-1");
  });
});
