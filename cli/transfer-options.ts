import type { Command } from 'commander';
import type { CopyOptions } from '../src/ops/copy.js';
import { parseCredentialsFlag } from '../src/transport/registry/credentials.js';
import { readUserFile } from '../src/util/user-file.js';
import type { RegistryOptions } from '../src/transport/registry/location.js';
import type { TransportOptions } from '../src/transport/transports.js';
import { parseByteSize, parseCount } from '../src/util/size.js';
import { createProgressReporter, resolveProgressMode, type ProgressReporter } from './progress.js';
import { collect } from './run.js';

/** Flags shared by commands that read or write images (registries, progress, parallelism). */
export interface TransferFlags {
  creds?: string;
  srcCreds?: string;
  destCreds?: string;
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
    .option('--creds <user:password>', 'registry credentials (default: from auth.json / ~/.docker/config.json and credential helpers)')
    .option('--authfile <file>', 'read registry credentials only from this auth file (containers-auth.json or docker config.json)')
    .option('--ca-cert <file>', 'trust this PEM CA certificate for registry TLS; repeatable', collect, [])
    .option('--insecure', 'allow plain HTTP to a registry on this machine (localhost, 127.0.0.0/8, ::1)')
    .option('--insecure-registry <host:port>', 'allow plain HTTP to this registry only (on this machine); repeatable', collect, []);
  if (copies) {
    command
      .option('--src-creds <user:password>', 'credentials for the source registry only')
      .option('--dest-creds <user:password>', 'credentials for the destination registry only')
      .option('--chunk-size <size>', 'upload new layers in chunks of this size (e.g. 16M) instead of one streamed request')
      .option('-j, --jobs <n>', 'layers moved at once (default 3)')
      .option('--retry-times <n>', 'retries after a temporary registry or network failure (default 3)')
      .option('--progress <mode>', 'auto, tty, plain, json or none (default auto: a live display on a terminal, plain lines otherwise)');
  }
  return command;
}

/** Reads the flags into transport and copy options; files (CA certificates) are read here so errors come first. */
export async function transferSettings(flags: TransferFlags, verb: string): Promise<TransferSettings> {
  const ca = flags.caCert.length > 0 ? (await Promise.all(flags.caCert.map(readCaFile))).join('\n') : undefined;
  const base: RegistryOptions = {
    ...(flags.authfile !== undefined ? { authFile: flags.authfile } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(flags.insecure === true ? { insecure: true } : (flags.insecureRegistry ?? []).length > 0 ? { insecure: flags.insecureRegistry } : {}),
  };
  const retries = flags.retryTimes !== undefined ? parseCount(flags.retryTimes, '--retry-times', 0, 20) : undefined;
  if (retries !== undefined) base.retry = { attempts: retries + 1, baseDelayMs: 500 };
  const credsFor = (specific: string | undefined): RegistryOptions => {
    const text = specific ?? flags.creds;
    return text !== undefined ? { ...base, credentials: parseCredentialsFlag(text) } : base;
  };
  const destination = credsFor(flags.destCreds);
  if (flags.chunkSize !== undefined) destination.chunkSize = parseByteSize(flags.chunkSize, '--chunk-size');
  const mode = flags.quiet === true ? 'none' : resolveProgressMode(flags.progress, process.stderr);
  const progress = mode === 'none' ? undefined : createProgressReporter(mode, process.stderr, { verb });
  return {
    source: { registry: credsFor(flags.srcCreds) },
    destination: { registry: destination },
    copy: {
      ...(flags.jobs !== undefined ? { concurrency: parseCount(flags.jobs, '--jobs', 1, 32) } : {}),
      ...(base.retry !== undefined ? { retry: base.retry } : {}),
      ...(progress !== undefined ? { onProgress: (e) => progress.update(e) } : {}),
    },
    progress,
  };
}

function readCaFile(file: string): Promise<string> {
  return readUserFile(file, (reason) => `--ca-cert ${file}: cannot read it (${reason})`);
}
