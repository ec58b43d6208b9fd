import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createProgressReporter,
  endProgress,
  formatBytes,
  formatDuration,
  reportedAsJson,
  resolveProgressMode,
  type BlobProgress,
  type ProgressMode,
  type ProgressReporter,
} from '../../../cli/progress.js';
import { ImagegateError, isImagegateError } from '../../../src/errors.js';

const MiB = 1024 * 1024;
const ESC = '\x1b';

/** A fake terminal or log: every write, in order. */
function sink(columns?: number): { writes: string[]; columns?: number; write(s: string): void; text(): string } {
  const writes: string[] = [];
  return { writes, columns, write: (s: string) => void writes.push(s), text: () => writes.join('') };
}

/** A clock the test moves by hand. */
function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function event(id: string, phase: BlobProgress['phase'], bytes: number, extra: Partial<BlobProgress> = {}): BlobProgress {
  return { id, label: `linux/amd64 layer ${id} (sha256:${id}abc…)`, phase, action: 'rewrite', bytes, total: 256 * MiB, ...extra };
}

/** The lines one tty frame shows, with cursor movement and clearing removed. */
function frameLines(frame: string): string[] {
  const plain = frame.replace(/\r|\x1b\[\d*[AJK]/g, '');
  return plain.split('\n').slice(0, -1);
}

function reporter(mode: ProgressMode, out: ReturnType<typeof sink>, c: ReturnType<typeof clock>, verb = 'encrypt'): ProgressReporter {
  return createProgressReporter(mode, out, { verb, now: c.now, intervalMs: 100 });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('formatBytes', () => {
  it('uses binary units with one decimal, two from GiB', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12.3 * MiB)).toBe('12.3 MiB');
    expect(formatBytes(1024 * MiB)).toBe('1.00 GiB');
    expect(formatBytes(3.5 * 1024 * 1024 * MiB)).toBe('3.50 TiB');
  });

  it('never shows 1024 of a unit after rounding', () => {
    expect(formatBytes(1023.7)).toBe('1.0 KiB');
    expect(formatBytes(MiB - 10)).toBe('1.0 MiB');
  });

  it('does not pretend to know nonsense sizes', () => {
    expect(formatBytes(-1)).toBe('? B');
    expect(formatBytes(Number.NaN)).toBe('? B');
  });
});

describe('resolveProgressMode', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };

  it('auto picks tty only on a real, capable terminal outside CI', () => {
    expect(resolveProgressMode(undefined, tty, { TERM: 'xterm-256color' })).toBe('tty');
    expect(resolveProgressMode('auto', tty, {})).toBe('tty');
    expect(resolveProgressMode('auto', pipe, { TERM: 'xterm' })).toBe('plain');
    expect(resolveProgressMode('auto', {}, {})).toBe('plain');
    expect(resolveProgressMode('auto', tty, { TERM: 'dumb' })).toBe('plain');
    expect(resolveProgressMode(undefined, tty, { CI: 'true' })).toBe('plain');
    expect(resolveProgressMode(undefined, tty, { CI: '' })).toBe('tty');
  });

  it('honours an explicit mode whatever the stream', () => {
    for (const mode of ['tty', 'plain', 'json', 'none'] as const) {
      expect(resolveProgressMode(mode, pipe, { CI: '1', TERM: 'dumb' })).toBe(mode);
    }
  });

  it('refuses an unknown mode with a usage error listing the choices', () => {
    let caught: unknown;
    try {
      resolveProgressMode('fancy', tty, {});
    } catch (e) {
      caught = e;
    }
    expect(isImagegateError(caught, 'USAGE')).toBe(true);
    expect((caught as Error).message).toMatch(/fancy.*auto, tty, plain, json, none/);
  });
});

describe('none', () => {
  it('writes nothing', () => {
    const out = sink();
    const c = clock();
    const r = reporter('none', out, c);
    r.update(event('1', 'start', 0));
    r.update(event('1', 'bytes', MiB));
    r.update(event('1', 'done', 256 * MiB));
    r.finish();
    expect(out.writes).toEqual([]);
  });
});

describe('plain', () => {
  it('prints one past-tense line per finished blob and nothing for start or bytes', () => {
    const out = sink();
    const c = clock();
    const r = reporter('plain', out, c);
    r.update(event('1', 'start', 0));
    r.update(event('2', 'start', 0, { action: 'copy', label: 'config (sha256:cfg…)', total: 2048 }));
    c.advance(1000);
    r.update(event('1', 'bytes', 100 * MiB));
    expect(out.writes).toEqual([]);
    r.update(event('2', 'done', 2048, { action: 'copy', label: 'config (sha256:cfg…)', total: 2048 }));
    c.advance(1000);
    r.update(event('1', 'done', 256 * MiB));
    r.update(event('3', 'skipped', 256 * MiB, { action: 'copy', message: 'mounted from library/base' }));
    r.update(event('4', 'retry', 0, { message: 'registry answered 503' }));
    r.update(event('4', 'failed', 0, { message: 'registry answered 503' }));
    r.finish();
    expect(out.text()).toBe(
      [
        'copied config (sha256:cfg…): 2.0 KiB in 1.0 s (2.0 KiB/s)',
        'encrypted linux/amd64 layer 1 (sha256:1abc…): 256.0 MiB in 2.0 s (128.0 MiB/s)',
        'exists linux/amd64 layer 3 (sha256:3abc…): mounted from library/base',
        'retrying linux/amd64 layer 4 (sha256:4abc…): registry answered 503',
        'failed linux/amd64 layer 4 (sha256:4abc…): registry answered 503',
        '',
      ].join('\n'),
    );
    expect(out.text()).not.toContain(ESC);
  });

  it('times a retried blob from its last start', () => {
    const out = sink();
    const c = clock();
    const r = reporter('plain', out, c, 'decrypt');
    r.update(event('1', 'start', 0));
    c.advance(5000);
    r.update(event('1', 'retry', 0, { message: 'connection reset' }));
    r.update(event('1', 'start', 0));
    c.advance(4000);
    r.update(event('1', 'done', 256 * MiB));
    expect(out.writes.at(-1)).toBe('decrypted linux/amd64 layer 1 (sha256:1abc…): 256.0 MiB in 4.0 s (64.0 MiB/s)\n');
  });

  it('puts other verbs in the past tense', () => {
    for (const [verb, past] of [
      ['rewrite', 'rewritten'],
      ['compress', 'compressed'],
      ['re-sign', 're-signed'],
    ] as const) {
      const out = sink();
      const r = reporter('plain', out, clock(), verb);
      r.update(event('1', 'done', 256 * MiB));
      expect(out.text()).toMatch(new RegExp(`^${past} linux/amd64 layer 1 .*: 256\\.0 MiB in 0\\.0 s\\n$`));
    }
  });

  it('drops events after finish', () => {
    const out = sink();
    const r = reporter('plain', out, clock());
    r.finish();
    r.update(event('1', 'done', 256 * MiB));
    expect(out.writes).toEqual([]);
  });
});

describe('json', () => {
  it('writes one object per line and thins out bytes events per blob', () => {
    const out = sink();
    const c = clock();
    const r = reporter('json', out, c);
    r.update(event('1', 'start', 0));
    r.update(event('2', 'start', 0));
    // 12 chunks per blob over 1.2 s: with 100 ms × 5 only the ones at 500 ms and 1000 ms get through.
    for (let i = 1; i <= 12; i++) {
      c.advance(100);
      r.update(event('1', 'bytes', i * MiB));
      r.update(event('2', 'bytes', i * MiB));
    }
    r.update(event('1', 'retry', 12 * MiB, { message: 'timeout' }));
    r.update(event('1', 'done', 256 * MiB));
    r.update(event('2', 'failed', 12 * MiB, { message: 'gave up' }));
    r.update(event('3', 'skipped', 256 * MiB, { action: 'copy' }));
    r.finish();

    const text = out.text();
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.every((l) => l.event === 'progress')).toBe(true);
    const phases = (id: string) => lines.filter((l) => l.id === id).map((l) => `${String(l.phase)}@${String(l.elapsedMs)}`);
    expect(phases('1')).toEqual(['start@0', 'bytes@500', 'bytes@1000', 'retry@1200', 'done@1200']);
    expect(phases('2')).toEqual(['start@0', 'bytes@500', 'bytes@1000', 'failed@1200']);
    expect(phases('3')).toEqual(['skipped@0']);
    expect(lines[0]).toEqual({
      schemaVersion: 1,
      event: 'progress',
      id: '1',
      label: 'linux/amd64 layer 1 (sha256:1abc…)',
      phase: 'start',
      action: 'rewrite',
      bytes: 0,
      total: 256 * MiB,
      elapsedMs: 0,
    });
    expect(lines.find((l) => l.phase === 'retry')?.message).toBe('timeout');
  });
});

describe('tty', () => {
  it('redraws status changes at once and byte counts on the timer, in place', () => {
    vi.useFakeTimers();
    const out = sink(100);
    const c = clock();
    const r = reporter('tty', out, c);

    r.update(event('1', 'start', 0));
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]).not.toContain(`${ESC}[`.concat('1A'));
    r.update(event('2', 'start', 0, { action: 'copy', label: 'config (sha256:cfg…)', total: 2048 }));
    expect(out.writes).toHaveLength(2);
    // Up over the first frame: one blob and the summary line.
    expect(out.writes[1]).toContain(`${ESC}[2A`);

    // Bytes alone wait for the next tick, however many arrive.
    c.advance(2000);
    r.update(event('1', 'bytes', 64 * MiB));
    r.update(event('1', 'bytes', 128 * MiB));
    expect(out.writes).toHaveLength(2);
    vi.advanceTimersByTime(100);
    expect(out.writes).toHaveLength(3);
    const running = frameLines(out.writes[2]!);
    expect(out.writes[2]).toContain(`${ESC}[3A`);
    expect(out.writes[2]).toContain(`${ESC}[2K`);
    expect(running).toHaveLength(3);
    expect(running[0]).toMatch(/^encrypt +linux\/amd64 layer 1 .*\[#+\.+\] +128\.0 MiB \/ +256\.0 MiB +64\.0 MiB\/s$/);
    expect(running[1]).toMatch(/^copy +config \(sha256:cfg…\) +\[\.+\] +0 B \/ +2\.0 KiB$/);
    // Nothing new: no redraw.
    vi.advanceTimersByTime(500);
    expect(out.writes).toHaveLength(3);

    r.update(event('1', 'done', 256 * MiB));
    r.update(event('2', 'skipped', 2048, { action: 'copy', label: 'config (sha256:cfg…)', total: 2048 }));
    r.update(event('3', 'retry', 0, { message: 'registry answered 503' }));
    r.update(event('3', 'failed', 0, { message: 'registry answered 503' }));
    r.finish();
    r.finish();
    expect(vi.getTimerCount()).toBe(0);

    const final = frameLines(out.writes.at(-1)!);
    expect(final).toHaveLength(4);
    expect(final[0]).toMatch(/^done +linux\/amd64 layer 1 .*\[#{10,}\] +256\.0 MiB \/ +256\.0 MiB$/);
    expect(final[1]).toMatch(/^exists +config .*\[#+\] +2\.0 KiB$/);
    // A failure shows why instead of a bar.
    expect(final[2]).toMatch(/^FAILED +linux\/amd64 layer 3 \(sha256:3abc…\) +registry answered 503$/);
    // A second finish and later events change nothing.
    const count = out.writes.length;
    r.update(event('4', 'start', 0));
    expect(out.writes).toHaveLength(count);
  });

  it('flushes pending bytes on finish and leaves no timer behind', () => {
    vi.useFakeTimers();
    const out = sink();
    const c = clock();
    const r = reporter('tty', out, c);
    r.update(event('1', 'start', 0));
    r.update(event('1', 'bytes', 128 * MiB));
    expect(vi.getTimerCount()).toBe(1);
    r.finish();
    expect(vi.getTimerCount()).toBe(0);
    expect(out.writes).toHaveLength(2);
    expect(frameLines(out.writes[1]!)[0]).toContain('128.0 MiB /');
  });

  it('keeps every line inside the terminal width', () => {
    const out = sink(60);
    const r = reporter('tty', out, clock());
    r.update(event('1', 'start', 0, { label: `linux/arm64/v8 layer 12 (sha256:${'f'.repeat(64)})` }));
    r.update(event('2', 'failed', 0, { message: 'x'.repeat(200) }));
    r.finish();
    const lines = frameLines(out.writes.at(-1)!);
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(59);
    expect(lines[0]).toContain('…');
  });

  it('keeps a message with newlines or escape codes on its one line', () => {
    const out = sink(200);
    const r = reporter('tty', out, clock());
    r.update(event('1', 'retry', 0, { message: `bad gateway\n<html>\n${ESC}[31mboom` }));
    r.finish();
    const lines = frameLines(out.writes[0]!);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^retry .* bad gateway <html> \[31mboom$/);

    const log = sink();
    const p = reporter('plain', log, clock());
    p.update(event('1', 'failed', 0, { message: 'line one\r\nline two' }));
    expect(log.text()).toBe('failed linux/amd64 layer 1 (sha256:1abc…): line one line two\n');
  });

  it('folds finished blobs into one line once there are more than 20', () => {
    const out = sink(120);
    const c = clock();
    const r = reporter('tty', out, c);
    for (let i = 0; i < 30; i++) {
      r.update(event(`b${i}`, 'start', 0));
      c.advance(10);
      r.update(event(`b${i}`, i % 10 === 0 ? 'skipped' : 'done', 256 * MiB));
    }
    r.update(event('last', 'start', 0));
    r.finish();
    for (const frame of out.writes) expect(frameLines(frame).length).toBeLessThanOrEqual(20);
    const final = frameLines(out.writes.at(-1)!);
    expect(final).toEqual([expect.stringMatching(/^30 done \(3 already there\)$/), expect.stringMatching(/^encrypt +linux\/amd64 layer last /), expect.stringMatching(/^elapsed /)]);
    // The frame that folded moved up over all 20 old lines and cleared what it no longer uses.
    const folding = out.writes.find((f) => f.includes(`${ESC}[20A`) && f.includes(`${ESC}[J`));
    expect(folding).toBeDefined();
  });

  it('bounds the display even when many blobs are in flight', () => {
    const out = sink(120);
    const r = reporter('tty', out, clock());
    for (let i = 0; i < 40; i++) r.update(event(`b${i}`, 'start', 0));
    r.finish();
    const final = frameLines(out.writes.at(-1)!);
    expect(final).toHaveLength(19);
    expect(final[0]).toBe('0 done, 23 more not shown');
    expect(final.at(-2)).toContain('layer b39 ');
    expect(final.at(-1)).toMatch(/^elapsed /);
  });
});

describe('tty: elapsed time and ETA', () => {
  it('formatDuration reads like a clock', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(7_400)).toBe('0:07');
    expect(formatDuration(754_000)).toBe('12:34');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
  });

  it('a summary line under the bars shows elapsed time, bytes, rate and the time left at that rate', () => {
    const out = sink(120);
    const c = clock();
    const r = reporter('tty', out, c);
    r.update(event('1', 'start', 0));
    r.update(event('2', 'start', 0));
    r.update(event('3', 'skipped', 256 * MiB, { action: 'copy' }));
    c.advance(4000);
    // 256 MiB of 512 MiB moved in 4 s: 64 MiB/s, 256 MiB to go, so 4 s left. The blob that existed counts for neither.
    r.update(event('1', 'retry', 64 * MiB, { message: 'reset' }));
    r.update(event('1', 'done', 256 * MiB));
    expect(frameLines(out.writes.at(-1)!).at(-1)).toBe('elapsed 0:04  256.0 MiB / 512.0 MiB  64.0 MiB/s  ETA 0:04');
    c.advance(4000);
    r.update(event('2', 'failed', 0, { message: 'gave up' }));
    r.finish();
    // Finished: how long it took, no ETA.
    expect(frameLines(out.writes.at(-1)!).at(-1)).toBe('elapsed 0:08  256.0 MiB / 256.0 MiB  32.0 MiB/s');
  });

  it('counts bytes of blobs still moving, and gives no ETA before anything moved', () => {
    vi.useFakeTimers();
    const out = sink(120);
    const c = clock();
    const r = reporter('tty', out, c);
    r.update(event('1', 'start', 0));
    expect(frameLines(out.writes.at(-1)!).at(-1)).toBe('elapsed 0:00  0 B / 256.0 MiB');
    c.advance(2000);
    r.update(event('1', 'bytes', 64 * MiB));
    vi.advanceTimersByTime(100);
    expect(frameLines(out.writes.at(-1)!).at(-1)).toBe('elapsed 0:02  64.0 MiB / 256.0 MiB  32.0 MiB/s  ETA 0:06');
    r.finish();
  });

  it('prints a message above the bars and draws them again below it', () => {
    const out = sink(120);
    const r = reporter('tty', out, clock());
    r.update(event('1', 'start', 0));
    r.message('skipped linux/amd64 layer 0: already encrypted');
    const frame = out.writes.slice(1).join('');
    // Up over the two lines drawn, cleared, the message, then the bars anew.
    expect(frame.startsWith(`\r${ESC}[2A${ESC}[J`)).toBe(true);
    expect(frameLines(frame)).toEqual(['skipped linux/amd64 layer 0: already encrypted', expect.stringMatching(/^encrypt +linux\/amd64 layer 1 /), expect.stringMatching(/^elapsed /)]);
  });
});

describe('json: only JSON lines, ending with a result event', () => {
  function parsed(out: ReturnType<typeof sink>): Array<Record<string, unknown>> {
    return out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('messages become events, and the result comes last, once, with the elapsed time', () => {
    const out = sink();
    const c = clock();
    const r = reporter('json', out, c);
    r.update(event('1', 'start', 0));
    r.message('skipped linux/amd64 layer 0: already encrypted');
    c.advance(1500);
    r.update(event('1', 'done', 256 * MiB));
    r.finish();
    r.result({ ok: true, fields: { digest: 'sha256:abc', destination: 'oci:out:1' } });
    r.message('too late');
    r.result({ ok: true, fields: { digest: 'again' } });
    const lines = parsed(out);
    expect(lines.map((l) => l.event)).toEqual(['progress', 'message', 'progress', 'result']);
    expect(lines.every((l) => l.schemaVersion === 1)).toBe(true);
    expect(lines[1]).toEqual({ schemaVersion: 1, event: 'message', message: 'skipped linux/amd64 layer 0: already encrypted' });
    expect(lines.at(-1)).toEqual({ schemaVersion: 1, event: 'result', ok: true, digest: 'sha256:abc', destination: 'oci:out:1', elapsedMs: 1500 });
  });

  it('a failure ends with a failed result naming code, exit code and message, and is marked as reported', async () => {
    const out = sink();
    const r = reporter('json', out, clock());
    r.update(event('1', 'start', 0));
    const error = new ImagegateError('AUTH', 'registry.example refused the credentials for team/app');
    await expect(endProgress(Promise.reject(error), r)).rejects.toBe(error);
    expect(parsed(out).at(-1)).toEqual({ schemaVersion: 1, event: 'result', ok: false, error: { code: 'AUTH', exitCode: 7, message: 'registry.example refused the credentials for team/app' }, elapsedMs: 0 });
    expect(reportedAsJson(error)).toBe(true);

    const internal = new Error('boom');
    const other = sink();
    await expect(endProgress(Promise.reject(internal), reporter('json', other, clock()))).rejects.toBe(internal);
    expect(parsed(other)).toEqual([{ schemaVersion: 1, event: 'result', ok: false, error: { code: 'INTERNAL', exitCode: 1, message: 'boom' }, elapsedMs: 0 }]);
  });

  it('a failure said of a layer keeps its code, temporary flag and fields, and the result names the layer and key', async () => {
    const vault = new ImagegateError('VAULT', 'Vault answered 503', { temporary: true });
    const said = vault.within((m) => `layer 0: ${m}`, { layer: 'layer 0', key: 'transit/keys/app' });
    expect(said).toMatchObject({ code: 'VAULT', temporary: true, message: 'layer 0: Vault answered 503', cause: vault });
    const out = sink();
    await expect(endProgress(Promise.reject(said), reporter('json', out, clock()))).rejects.toBe(said);
    expect(parsed(out).at(-1)).toEqual({
      schemaVersion: 1,
      event: 'result',
      ok: false,
      error: { code: 'VAULT', exitCode: 9, message: 'layer 0: Vault answered 503', layer: 'layer 0', key: 'transit/keys/app' },
      elapsedMs: 0,
    });
  });

  it('other modes leave failures to the CLI, and print messages as lines', async () => {
    const out = sink();
    const r = reporter('plain', out, clock());
    r.message('skipped layer 0');
    const error = new ImagegateError('AUTH', 'refused');
    await expect(endProgress(Promise.reject(error), r)).rejects.toBe(error);
    r.result({ ok: true, fields: { digest: 'sha256:abc' } });
    expect(out.text()).toBe('skipped layer 0\n');
    expect(reportedAsJson(error)).toBe(false);
    expect(await endProgress(Promise.resolve(42), undefined)).toBe(42);
  });
});

describe('failures of one cause', () => {
  it('text says the cause once and the others only that they failed the same way; json keeps every message', () => {
    const refused = 'registry.example refused the credentials for team/app';
    const plain = sink();
    const text = reporter('plain', plain, clock());
    const json = sink();
    const lines = reporter('json', json, clock());
    for (const r of [text, lines]) for (const id of ['1', '2', '3']) r.update(event(id, 'failed', 0, { message: refused }));
    expect(plain.text().trimEnd().split('\n').map((l) => l.replace(/^failed linux\/amd64 layer \d \(sha256:\dabc…\): /, ''))).toEqual([refused, 'the same error as above', 'the same error as above']);
    expect(json.text().trimEnd().split('\n').map((l) => (JSON.parse(l) as { message?: string }).message)).toEqual([refused, refused, refused]);
  });
});
