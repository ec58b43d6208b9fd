import { CommanderError } from 'commander';
import { ImagegateError } from '../src/errors.js';
import { asImagegateError } from '../src/util/system-errors.js';
import { reportedAsJson } from './progress.js';

/** Exit code for failures that are our bug, not the user's input. */
const EXIT_INTERNAL = 1;
const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;

/** Where the CLI writes progress and errors: stderr, so stdout stays parseable (digests, --json). */
export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * Turns any failure into one clear line on stderr and a meaningful exit code. Our own typed errors are shown as they
 * are, and system failures a user can fix (a full disk, a port in use) as the typed error they amount to; anything
 * else is an internal error, shown with its stack when IMAGEGATE_DEBUG is set.
 */
export function reportFailure(e: unknown): number {
  const typed = asImagegateError(e);
  // --progress json already wrote this failure as its result event; a text line would break "JSON lines only".
  if (reportedAsJson(e)) return typed?.exitCode ?? EXIT_INTERNAL;
  if (typed !== undefined) {
    info(`imagegate: ${typed.message}`);
    return typed.exitCode;
  }
  if (e instanceof CommanderError) {
    // commander already printed its message (unknown option, missing argument).
    return e.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  info(`imagegate: internal error: ${err.message}`);
  if (process.env.IMAGEGATE_DEBUG !== undefined) info(err.stack ?? '');
  else info('(set IMAGEGATE_DEBUG=1 for details, and please report this)');
  return EXIT_INTERNAL;
}

/**
 * An AbortSignal that fires on the first SIGINT or SIGTERM, so a running copy stops and removes what it staged;
 * a second signal exits at once. `leaves` says what the interrupted work leaves behind; `say` prints the notice
 * (through the progress reporter, so `--progress json` stays JSON lines only).
 */
export function interruptSignal(leaves = 'nothing was written', say: (text: string) => void = info): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(EXIT_INTERRUPTED);
    say(`imagegate: ${name}: stopping and removing partial output (again to quit at once)`);
    controller.abort(new ImagegateError('INTERRUPTED', `interrupted by ${name}; ${leaves}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
