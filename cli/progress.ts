import { ImagegateError } from '../src/errors.js';
import { asImagegateError } from '../src/util/system-errors.js';
import type { BlobProgress } from '../src/ops/copy.js';
import { JSON_SCHEMA_VERSION } from './json-output.js';

export type { BlobProgress };

/** tty: live bars redrawn in place; plain: one line per finished blob; json: one object per line; none: silent. */
export type ProgressMode = 'tty' | 'plain' | 'json' | 'none';

const MODE_CHOICES = ['auto', 'tty', 'plain', 'json', 'none'] as const;

/**
 * Turns a `--progress` value into a mode. 'auto' (or nothing) resolves to tty when the stream isTTY, TERM is not
 * 'dumb' and CI is not set, else plain: redrawing in place only works on a terminal that understands ANSI, and CI
 * logs keep every redraw as a new line.
 */
export function resolveProgressMode(
  requested: string | undefined,
  stream: NodeJS.WriteStream | { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): ProgressMode {
  switch (requested) {
    case undefined:
    case 'auto': {
      const ci = env.CI !== undefined && env.CI !== '';
      return stream.isTTY === true && env.TERM !== 'dumb' && !ci ? 'tty' : 'plain';
    }
    case 'tty':
    case 'plain':
    case 'json':
    case 'none':
      return requested;
    default:
      throw new ImagegateError('USAGE', `unknown progress mode "${requested}": choose one of ${MODE_CHOICES.join(', ')}`);
  }
}

/** Receives the copy driver's events and shows them; the CLI calls finish() when the copy ends, however it ends. */
export interface ProgressReporter {
  update(event: BlobProgress): void;
  /** final redraw and stop timers; idempotent */
  finish(): void;
  /** A note for the user (a layer skipped, what was written): a line, or in json mode a `message` event. */
  message(text: string): void;
  /**
   * The command's outcome, once the work ended: in json mode the last line, a `result` event, either `ok: true` with
   * `fields` or `ok: false` with the error; other modes show nothing here (the command prints its own summary, and
   * a failure is reported by the CLI's error handler).
   */
  result(outcome: { ok: true; fields: Record<string, unknown> } | { ok: false; error: unknown }): void;
}

/** Where progress goes: stderr in the CLI. `columns` is read on every redraw, so a resized terminal is followed. */
export interface ProgressOutput {
  write(s: string): unknown;
  columns?: number;
}

export interface ProgressOptions {
  /** What a rewrite does, e.g. 'encrypt': the status word of rewrite lines; copy lines say 'copy'. Default 'rewrite'. */
  verb?: string;
  /** Clock in milliseconds, for rates and elapsed times; tests pass a fake one. */
  now?: () => number;
  /** Least time between two tty redraws caused by bytes alone; json sends a blob's bytes at most every 5×. Default 100. */
  intervalMs?: number;
}

const DEFAULT_INTERVAL_MS = 100;
const DEFAULT_COLUMNS = 80;

/**
 * A reporter for `mode` writing to `out`. Events after `finish()` are dropped, so a late event from a cancelled
 * copy cannot scribble below the final display.
 */
export function createProgressReporter(mode: ProgressMode, out: ProgressOutput, options: ProgressOptions = {}): ProgressReporter {
  const settings: Settings = {
    verb: options.verb ?? 'rewrite',
    now: options.now ?? (() => performance.now()),
    intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
  };
  switch (mode) {
    case 'tty':
      return new TtyReporter(out, settings);
    case 'plain':
      return new PlainReporter(out, settings);
    case 'json':
      return new JsonReporter(out, settings);
    case 'none':
      return { update() {}, finish() {}, message() {}, result() {} };
  }
}

/**
 * Ends `progress` when `work` settles: finish() either way and, for a failure, a failed `result` event (json mode).
 * The error is thrown on; the CLI's error handler asks `reportedAsJson` so as not to print it a second time.
 */
export async function endProgress<T>(work: Promise<T>, progress: ProgressReporter | undefined): Promise<T> {
  try {
    const value = await work;
    progress?.finish();
    return value;
  } catch (e) {
    progress?.finish();
    progress?.result({ ok: false, error: e });
    throw e;
  }
}

/**
 * A command's note to the user: through the reporter when there is one (above a tty display, or a json `message`
 * event, since `--progress json` promises JSON lines only), else a line on stderr.
 */
export function note(progress: ProgressReporter | undefined, text: string): void {
  if (progress !== undefined) progress.message(text);
  else process.stderr.write(`${text}\n`);
}

/** Errors a json reporter already wrote as its `result` event: `--progress json` promises JSON lines only. */
const errorsReportedAsJson = new WeakSet<object>();

/** True when `e` was written as a json `result` event, so the CLI must not print it again as text. */
export function reportedAsJson(e: unknown): boolean {
  return typeof e === 'object' && e !== null && errorsReportedAsJson.has(e);
}

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** "512 B", "1.5 KiB", "12.3 MiB", "1.00 GiB": binary units; GiB and up get two decimals since images get that big. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '? B';
  if (Math.round(n) < 1024) return `${Math.round(n)} B`;
  const decimals = (unit: number): number => (unit >= 2 ? 2 : 1);
  let unit = 0;
  let value = n / 1024;
  // Step up while the rounded text would reach 1024 (1023.96 KiB is "1.0 MiB", not "1024.0 KiB").
  while (unit < UNITS.length - 1 && Number(value.toFixed(decimals(unit))) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(decimals(unit))} ${UNITS[unit]}`;
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A clock reading for elapsed times and ETAs: "0:07", "12:34", "1:02:03". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const [h, m, sec] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

/** Bytes per second as "121.9 MiB/s", or undefined while too little time passed to say. */
function formatRate(bytes: number, ms: number): string | undefined {
  return ms > 0 && bytes > 0 ? `${formatBytes((bytes * 1000) / ms)}/s` : undefined;
}

function pastTense(verb: string): string {
  const known: Record<string, string> = { encrypt: 'encrypted', decrypt: 'decrypted', rewrite: 'rewritten', copy: 'copied' };
  return known[verb] ?? (verb.endsWith('e') ? `${verb}d` : `${verb}ed`);
}

interface Settings {
  verb: string;
  now: () => number;
  intervalMs: number;
}

/** What is known of one blob: its latest event, and when its current attempt started. */
interface TrackedBlob {
  event: BlobProgress;
  /** The latest 'start' (the driver sends one per attempt) or, before any, the first event. */
  startedAt: number;
  /** json: when this blob's last line was written. */
  lastWrittenAt?: number;
}

/** The shared bookkeeping: blobs by id in order of first appearance. */
abstract class BaseReporter implements ProgressReporter {
  protected readonly blobs = new Map<string, TrackedBlob>();
  protected finished = false;
  /** When the first event came: where elapsed time counts from. */
  protected firstAt: number | undefined;

  constructor(
    protected readonly out: ProgressOutput,
    protected readonly settings: Settings,
  ) {}

  /**
   * Blobs in flight together that fail for one cause (credentials the registry refused, a full disk) fail with the
   * same message: text says it once and the others only that they failed for the same reason, so the cause is read
   * once and not once per layer. JSON keeps every message: a tool reads each event on its own.
   */
  protected readonly saysFailuresOnce: boolean = true;
  private readonly failuresSaid = new Set<string>();

  update(event: BlobProgress): void {
    if (this.finished) return;
    if (this.saysFailuresOnce && event.phase === 'failed' && event.message !== undefined) {
      if (this.failuresSaid.has(event.message)) event = { ...event, message: 'the same error as above' };
      else this.failuresSaid.add(event.message);
    }
    const now = this.settings.now();
    this.firstAt ??= now;
    let blob = this.blobs.get(event.id);
    if (blob === undefined) {
      blob = { event, startedAt: now };
      this.blobs.set(event.id, blob);
    } else {
      blob.event = event;
      if (event.phase === 'start') blob.startedAt = now;
    }
    this.handle(blob, now);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.close();
  }

  message(text: string): void {
    this.out.write(`${oneLine(text)}\n`);
  }

  result(_outcome: Parameters<ProgressReporter['result']>[0]): void {}

  protected abstract handle(blob: TrackedBlob, now: number): void;
  protected close(): void {}
}

/** One line per blob when it finishes (or retries): what a log file or a CI job wants. */
class PlainReporter extends BaseReporter {
  protected handle(blob: TrackedBlob, now: number): void {
    const { phase, label, action, total, message } = blob.event;
    const why = message !== undefined ? `: ${message}` : '';
    switch (phase) {
      case 'start':
      case 'bytes':
        return;
      case 'done': {
        const ms = now - blob.startedAt;
        const rate = formatRate(total, ms);
        const verb = action === 'copy' ? 'copied' : pastTense(this.settings.verb);
        this.line(`${verb} ${label}: ${formatBytes(total)} in ${formatSeconds(ms)}${rate !== undefined ? ` (${rate})` : ''}`);
        return;
      }
      case 'skipped':
        this.line(`exists ${label}${why}`);
        return;
      case 'retry':
        this.line(`retrying ${label}${why}`);
        return;
      case 'failed':
        this.line(`failed ${label}${why}`);
        return;
    }
  }

  private line(text: string): void {
    this.out.write(`${oneLine(text)}\n`);
  }
}

/**
 * One JSON object per line, for tools (docs/json-output.md): `progress` events ('bytes' thinned out, since a layer
 * reads in thousands of chunks), `message` events for what other modes print as text, and a last `result` event.
 * Every line carries the schema version.
 */
class JsonReporter extends BaseReporter {
  protected override readonly saysFailuresOnce = false;
  private resulted = false;

  protected handle(blob: TrackedBlob, now: number): void {
    const event = blob.event;
    if (event.phase === 'bytes' && blob.lastWrittenAt !== undefined && now - blob.lastWrittenAt < this.settings.intervalMs * 5) return;
    blob.lastWrittenAt = now;
    this.line({ event: 'progress', ...event, elapsedMs: Math.round(now - blob.startedAt) });
  }

  override message(text: string): void {
    if (!this.resulted) this.line({ event: 'message', message: text });
  }

  override result(outcome: Parameters<ProgressReporter['result']>[0]): void {
    // One result, last: nothing follows it.
    if (this.resulted) return;
    this.resulted = true;
    const elapsedMs = this.firstAt !== undefined ? Math.round(this.settings.now() - this.firstAt) : 0;
    if (outcome.ok) {
      this.line({ event: 'result', ok: true, ...outcome.fields, elapsedMs });
      return;
    }
    const e = outcome.error;
    // Classified as the CLI's error handler does: a full disk or a port in use is a typed error, not an internal one.
    const typed = asImagegateError(e);
    const error =
      typed !== undefined
        ? { code: typed.code, exitCode: typed.exitCode, message: typed.message, ...typed.fields }
        : { code: 'INTERNAL', exitCode: 1, message: e instanceof Error ? e.message : String(e) };
    if (typeof e === 'object' && e !== null) errorsReportedAsJson.add(e);
    this.line({ event: 'result', ok: false, error, elapsedMs });
  }

  private line(fields: Record<string, unknown>): void {
    this.out.write(`${JSON.stringify({ schemaVersion: JSON_SCHEMA_VERSION, ...fields })}\n`);
  }
}

/** More lines than this and finished blobs fold into one summary line, so the display never outgrows a screen. */
const MAX_LINES = 20;
const MAX_BAR = 20;
const MIN_BAR = 10;
const MIN_LABEL = 12;
/** Wide enough for "1023.9 MiB", so the sizes column does not jitter as numbers grow. */
const SIZE_WIDTH = 10;
/** "  1023.9 MiB/s": room kept for the rate when fitting labels. */
const RATE_WIDTH = 14;

/** Live bars, one per blob, redrawn in place with ANSI cursor movement. */
class TtyReporter extends BaseReporter {
  /** Lines the last draw left on screen: how far up the next draw starts. */
  private drawnLines = 0;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;

  protected handle(blob: TrackedBlob, _now: number): void {
    if (blob.event.phase !== 'bytes') {
      // A status change is worth showing at once; byte counts wait for the timer so a fast stream does not flood
      // the terminal.
      this.draw();
      return;
    }
    this.dirty = true;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        if (this.dirty) this.draw();
      }, this.settings.intervalMs);
      // Progress never keeps the process alive.
      this.timer.unref();
    }
  }

  protected override close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    // The last frame says how long it all took, without an ETA.
    if (this.blobs.size > 0) this.draw();
  }

  /** A message goes above the bars, which are drawn again below it, so neither overwrites the other. */
  override message(text: string): void {
    const up = this.drawnLines > 0 ? `\r\x1b[${this.drawnLines}A\x1b[J` : '';
    this.drawnLines = 0;
    this.out.write(`${up}${oneLine(text)}\n`);
    if (this.blobs.size > 0) this.draw();
  }

  private draw(): void {
    this.dirty = false;
    const columns = this.out.columns !== undefined && this.out.columns > 0 ? this.out.columns : DEFAULT_COLUMNS;
    const lines = this.lines(columns);
    let text = this.drawnLines > 0 ? `\r\x1b[${this.drawnLines}A` : '';
    for (const line of lines) text += `\x1b[2K${line}\n`;
    // Fewer lines than last time (finished blobs folded): clear what is left below.
    if (lines.length < this.drawnLines) text += '\x1b[J';
    this.drawnLines = lines.length;
    this.out.write(text);
  }

  private lines(columns: number): string[] {
    const all = [...this.blobs.values()];
    let shown = all;
    let header: string | undefined;
    // One line of MAX_LINES is the summary (elapsed time, ETA).
    const maxLines = MAX_LINES - 1;
    if (all.length > maxLines) {
      const isFinished = (b: TrackedBlob): boolean => b.event.phase === 'done' || b.event.phase === 'skipped';
      const finished = all.filter(isFinished);
      const existed = finished.filter((b) => b.event.phase === 'skipped').length;
      header = `${finished.length} done${existed > 0 ? ` (${existed} already there)` : ''}`;
      shown = all.filter((b) => !isFinished(b));
      // More blobs in flight (or failed) than fit: keep the latest, count the rest.
      if (shown.length > maxLines - 1) {
        const hidden = shown.length - (maxLines - 2);
        shown = shown.slice(hidden);
        header += `, ${hidden} more not shown`;
      }
    }
    const statusWidth = Math.max(7, this.settings.verb.length);
    // Fit labels first, then give the bar what is left between MIN_BAR and MAX_BAR.
    const fixed = statusWidth + 1 + 1 + 2 + 1 + SIZE_WIDTH * 2 + 3 + RATE_WIDTH;
    const available = columns - 1 - fixed;
    const longest = Math.max(0, ...shown.map((b) => b.event.label.length));
    const labelWidth = Math.min(longest, Math.max(MIN_LABEL, available - MIN_BAR));
    const barWidth = Math.min(MAX_BAR, Math.max(MIN_BAR, available - labelWidth));
    const lines = shown.map((b) => this.line(b, statusWidth, labelWidth, barWidth));
    if (header !== undefined) lines.unshift(header);
    if (all.length > 0) lines.push(this.summary(all));
    // Never let a line wrap or break: the cursor-up count assumes one terminal row per line.
    return lines.map((l) => truncate(oneLine(l), columns - 1));
  }

  /**
   * Elapsed time since the first event, bytes moved of those known, the overall rate and, while anything is still
   * moving, the time left at that rate. Blobs that already existed (nothing moved) and failed ones count for
   * neither; blobs the copy has not started yet are not known, so the ETA covers the blobs shown.
   */
  private summary(all: TrackedBlob[]): string {
    const elapsed = this.settings.now() - (this.firstAt ?? this.settings.now());
    const moving = all.filter((b) => b.event.phase !== 'skipped' && b.event.phase !== 'failed');
    const done = moving.reduce((n, b) => n + (b.event.phase === 'done' ? b.event.total : Math.min(b.event.bytes, b.event.total)), 0);
    const total = moving.reduce((n, b) => n + b.event.total, 0);
    const parts = [`elapsed ${formatDuration(elapsed)}`, `${formatBytes(done)} / ${formatBytes(total)}`];
    const rate = formatRate(done, elapsed);
    if (rate !== undefined) parts.push(rate);
    const remaining = total - done;
    if (!this.finished && remaining > 0 && done > 0 && elapsed > 0) parts.push(`ETA ${formatDuration((remaining * elapsed) / done)}`);
    return parts.join('  ');
  }

  private line(blob: TrackedBlob, statusWidth: number, labelWidth: number, barWidth: number): string {
    const { phase, action, label, bytes, total, message } = blob.event;
    const finished = phase === 'done' || phase === 'skipped';
    const status = STATUS[phase] ?? (action === 'copy' ? 'copy' : this.settings.verb);
    const fraction = finished ? 1 : total > 0 ? Math.min(1, bytes / total) : 0;
    const filled = Math.floor(fraction * barWidth);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]`;
    const sizes =
      phase === 'skipped'
        ? `${''.padStart(SIZE_WIDTH)}   ${formatBytes(total).padStart(SIZE_WIDTH)}`
        : `${formatBytes(finished ? total : bytes).padStart(SIZE_WIDTH)} / ${formatBytes(total).padStart(SIZE_WIDTH)}`;
    const head = `${status.padEnd(statusWidth)} ${truncate(label, labelWidth).padEnd(labelWidth)}`;
    // Why it failed matters more than how far it got: give the message the room of the bar and sizes.
    if (phase === 'failed') return message !== undefined ? `${head}  ${message}` : head;
    const extra = phase === 'retry' ? message : finished ? undefined : formatRate(bytes, this.settings.now() - blob.startedAt);
    const text = `${head} ${bar} ${sizes}`;
    return extra !== undefined ? `${text}  ${extra}` : text;
  }
}

/** Status words for phases that do not depend on the action. */
const STATUS: Partial<Record<BlobProgress['phase'], string>> = { done: 'done', skipped: 'exists', retry: 'retry', failed: 'FAILED' };

function truncate(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 0 ? '' : `${text.slice(0, width - 1)}…`;
}

/** Error messages may carry newlines or escape codes (a registry's error body); one event stays one line. */
function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ');
}
