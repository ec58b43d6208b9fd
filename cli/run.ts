import { CommanderError } from 'commander';
import { ImagegateError } from '../src/errors.js';

/** Exit code for failures that are our bug, not the user's input. */
export const EXIT_INTERNAL = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

/** Where the CLI writes progress and errors: stderr, so stdout stays parseable (digests, --json). */
export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * Turns any failure into one clear line on stderr and a meaningful exit code. Only our own typed errors are
 * shown as they are; anything else is an internal error, shown with its stack when IMAGEGATE_DEBUG is set.
 */
export function reportFailure(e: unknown): number {
  if (e instanceof ImagegateError) {
    info(`imagegate: ${e.message}`);
    return e.exitCode;
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
 * a second signal exits at once.
 */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(EXIT_INTERRUPTED);
    info(`imagegate: ${name}: stopping and removing partial output (again to quit at once)`);
    controller.abort(new ImagegateError('INTERRUPTED', `interrupted by ${name}; nothing was written`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
