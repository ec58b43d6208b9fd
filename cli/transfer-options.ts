import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { ImagegateError } from '../src/errors.js';
import type { CopyOptions } from '../src/ops/copy.js';
import { parseCredentialsFlag } from '../src/transport/registry/credentials.js';
import { REGISTRY_CA_ENV } from '../src/transport/registry/trust.js';
import { readCaCertificateFile } from '../src/util/ca-certificate-file.js';
import type { RegistryOptions } from '../src/transport/registry/location.js';
import type { TransportOptions } from '../src/transport/transports.js';
import { parseByteSize, parseCount } from '../src/util/size.js';
import { createProgressReporter, resolveProgressMode, type BlobProgress, type ProgressReporter } from './progress.js';
import { collect } from './run.js';
import { addRefusedFlag, addTlsVerify } from './skopeo-flags.js';

/** Flags shared by commands that read or write images (registries, progress, parallelism). */
export interface TransferFlags {
  creds?: string;
  srcCreds?: string;
  destCreds?: string;
  credsStdin?: boolean;
  authfile?: string;
  caCert: string[];
  insecure?: boolean;
  insecureRegistry: string[];
  chunkSize?: string;
  jobs?: string;
  retryTimes?: string;
  progress?: string;
  quiet?: boolean;
}

export interface TransferSettings {
  source: TransportOptions;
  destination: TransportOptions;
  copy: Pick<CopyOptions, 'concurrency' | 'retry' | 'onProgress'>;
  progress: ProgressReporter | undefined;
}

/** Adds the registry and transfer flags; `copies` adds those that only matter when an image is written. */
export function addTransferOptions(command: Command, copies: boolean): Command {
  command
    .option(
      '--creds <user[:password]>',
      'registry credentials (default: from auth.json / ~/.docker/config.json and credential helpers); with USER alone the password is asked for on the terminal, without echo, or read from standard input with --creds-stdin',
    )
    .option('--creds-stdin', 'read the password of --creds USER (and --src-creds/--dest-creds USER) from standard input, one line each, in that order')
    .option('--authfile <file>', 'read registry credentials only from this auth file (containers-auth.json or docker config.json)')
    .option('--ca-cert <file>', 'trust this PEM CA certificate for registry TLS; repeatable', collect, [])
    .option('--insecure', 'allow plain HTTP to a registry on this machine (localhost, 127.0.0.0/8, ::1)')
    .option('--insecure-registry <host:port>', 'allow plain HTTP to this registry only (on this machine); repeatable', collect, []);
  addTlsVerify(command, '--tls-verify');
  addRefusedFlag(command, '--cert-dir <dir>', 'did you mean --ca-cert DIR/ca.crt? imagegate takes the CA certificate file itself, and no client certificates');
  if (copies) {
    for (const side of ['src', 'dest']) {
      addTlsVerify(command, `--${side}-tls-verify`);
      addRefusedFlag(command, `--${side}-authfile <file>`, 'did you mean --authfile FILE? imagegate reads one auth file for source and destination (or give --src-creds/--dest-creds)');
      addRefusedFlag(command, `--${side}-cert-dir <dir>`, 'did you mean --ca-cert DIR/ca.crt? imagegate takes CA certificate files (repeatable, for both sides), and no client certificates');
    }
    command
      .option('--src-creds <user[:password]>', 'credentials for the source registry only (USER alone: the password is asked for, as with --creds)')
      .option('--dest-creds <user[:password]>', 'credentials for the destination registry only (USER alone: the password is asked for, as with --creds)')
      .option('--chunk-size <size>', 'upload new layers in chunks of this size (e.g. 16M) instead of one streamed request')
      .option('-j, --jobs <n>', 'layers moved at once (default 3)')
      .option('--retry-times <n>', 'retries after a temporary registry or network failure (default 3)')
      .option('--progress <mode>', 'auto, tty, plain, json or none (default auto: a live display on a terminal, plain lines otherwise)');
  }
  return command;
}

/** Reads the flags into transport and copy options; files (CA certificates) are read and checked here so errors come first. */
export async function transferSettings(flags: TransferFlags, verb: string): Promise<TransferSettings> {
  // The injected check and unpack containers get a private registry's CA through the environment (no file to mount).
  const fromEnv = process.env[REGISTRY_CA_ENV] !== undefined && process.env[REGISTRY_CA_ENV] !== '' ? [process.env[REGISTRY_CA_ENV]] : [];
  const cas = [...(await Promise.all(flags.caCert.map((file) => readCaCertificateFile(file, '--ca-cert')))), ...fromEnv];
  const ca = cas.length > 0 ? cas.join('\n') : undefined;
  const base: RegistryOptions = {
    ...(flags.authfile !== undefined ? { authFile: flags.authfile } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(flags.insecure === true ? { insecure: true } : (flags.insecureRegistry ?? []).length > 0 ? { insecure: flags.insecureRegistry } : {}),
  };
  const retries = flags.retryTimes !== undefined ? parseCount(flags.retryTimes, '--retry-times', 0, 20) : undefined;
  if (retries !== undefined) base.retry = { attempts: retries + 1, baseDelayMs: 500 };
  const creds = await completeCredentials(flags);
  const credsFor = (specific: string | undefined): RegistryOptions => {
    const text = specific ?? creds.creds;
    return text !== undefined ? { ...base, credentials: parseCredentialsFlag(text) } : base;
  };
  const destination = credsFor(creds.destCreds);
  if (flags.chunkSize !== undefined) destination.chunkSize = parseByteSize(flags.chunkSize, '--chunk-size');
  const mode = flags.quiet === true ? 'none' : resolveProgressMode(flags.progress, process.stderr);
  const progress = mode === 'none' ? undefined : createProgressReporter(mode, process.stderr, { verb });
  return {
    source: { registry: credsFor(creds.srcCreds) },
    destination: { registry: destination },
    copy: {
      ...(flags.jobs !== undefined ? { concurrency: parseCount(flags.jobs, '--jobs', 1, 32) } : {}),
      ...(base.retry !== undefined ? { retry: base.retry } : {}),
      ...(progress !== undefined ? { onProgress: (e: BlobProgress) => progress.update(e) } : {}),
    },
    progress,
  };
}

/** Password lines are short; a longer "line" is not a password typed or piped in. */
const MAX_PASSWORD_LINE = 4096;

/**
 * The credential flags with every password filled in. A password on a command line is visible to every user of the
 * machine (`ps`, /proc) and lands in shell history and CI logs, so, as in skopeo, `--creds USER` without
 * `:PASSWORD` asks for it on a terminal (stderr, without echo); with `--creds-stdin` it reads one line from standard
 * input instead (`printf '%s\n' "$PASSWORD" | imagegate … --creds USER --creds-stdin`), as `docker login
 * --password-stdin` does. Standard input is read only when asked to: a CI job whose stdin is an open pipe would
 * otherwise hang, and a command that reads manifests from `-` would lose them. Without a terminal or --creds-stdin
 * the run is refused, and so is an empty password: sending one earns only a 401 that names no cause. With several
 * such flags the lines are read in the order --creds, --src-creds, --dest-creds.
 */
async function completeCredentials(flags: TransferFlags): Promise<Pick<TransferFlags, 'creds' | 'srcCreds' | 'destCreds'>> {
  const names = [
    ['creds', '--creds'],
    ['srcCreds', '--src-creds'],
    ['destCreds', '--dest-creds'],
  ] as const;
  const out: Pick<TransferFlags, 'creds' | 'srcCreds' | 'destCreds'> = {};
  const needing = names.filter(([key]) => flags[key] !== undefined && flags[key] !== '' && !flags[key]!.includes(':'));
  if (flags.credsStdin === true && needing.length === 0) {
    throw new ImagegateError('USAGE', '--creds-stdin reads the password of --creds USER, but no credentials flag is missing one; give --creds USER without :PASSWORD');
  }
  if (needing.length > 0 && flags.credsStdin !== true && process.stdin.isTTY !== true) {
    const [key, flag] = needing[0]!;
    const user = flags[key]!;
    throw new ImagegateError(
      'USAGE',
      `${flag} ${user} gives no password, and standard input is not a terminal to ask on; pipe it in with --creds-stdin (printf '%s\\n' "$PASSWORD" | imagegate … ${flag} ${user} --creds-stdin), or use an auth file (--authfile)`,
    );
  }
  const lines = needing.length > 0 && flags.credsStdin === true ? stdinLines() : undefined;
  try {
    for (const [key, flag] of names) {
      const text = flags[key];
      if (text === undefined) continue;
      if (text.includes(':') || text === '') {
        out[key] = text;
        continue;
      }
      const password = lines !== undefined ? await lines.next(flag, text) : await promptHidden(`Password for ${text} (${flag}): `);
      if (password === '') {
        const where = lines !== undefined ? 'the line read from standard input is empty (is the variable piped in set?)' : 'no password was typed';
        throw new ImagegateError('USAGE', `${flag} ${text}: ${where}; registries refuse an empty password`);
      }
      out[key] = `${text}:${password}`;
    }
  } finally {
    lines?.close();
  }
  return out;
}

/** Lines of standard input, read one at a time so nothing after the passwords is consumed. */
function stdinLines(): { next: (flag: string, user: string) => Promise<string>; close: () => void } {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  const iterator = rl[Symbol.asyncIterator]();
  return {
    async next(flag, user) {
      const r = await iterator.next();
      if (r.done === true) {
        throw new ImagegateError(
          'USAGE',
          `${flag} ${user} gives no password, and standard input ended before one was read; pipe it in as one line per password-less flag (printf '%s\\n' "$PASSWORD" | imagegate … ${flag} ${user} --creds-stdin), or use an auth file (--authfile)`,
        );
      }
      if (r.value.length > MAX_PASSWORD_LINE) throw new ImagegateError('USAGE', `${flag} ${user}: the line read from standard input is longer than ${MAX_PASSWORD_LINE} characters, so it is not a password`);
      return r.value;
    },
    close() {
      rl.close();
      // Whatever follows the password lines is not ours to read; let the process exit without waiting for it.
      process.stdin.destroy();
    },
  };
}

/** Asks on the terminal without echoing what is typed (raw mode); Ctrl-C interrupts, Ctrl-D ends the input. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  // Echo off before the question shows: whatever is typed once it is visible is never echoed.
  stdin.setRawMode(true);
  stdin.resume();
  process.stderr.write(question);
  return new Promise<string>((resolve, reject) => {
    let typed = '';
    const finish = (error?: ImagegateError): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error !== undefined) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new ImagegateError('INTERRUPTED', 'interrupted at the password prompt; nothing was done'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (typed.length < MAX_PASSWORD_LINE) typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}
