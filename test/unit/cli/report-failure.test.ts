/**
 * System failures a user can fix reach the top of the CLI as typed errors with the exit code of their class, not as
 * "internal error, please report" (issue 15). The errors here are synthetic: shaped exactly as Node raises them
 * (`code`, `syscall`, `path` or `address`/`port`), which a full disk or a taken port cannot be made to produce on
 * demand in a unit test. test/integration/error-classes.test.ts produces the real ones.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { reportFailure } from '../../../cli/run.js';
import { EXIT_CODES, ImagegateError } from '../../../src/errors.js';
import { freeSpaceOf, noSpaceError } from '../../../src/util/system-errors.js';

/** A Node system error as fs and net raise them. */
function systemError(code: string, message: string, fields: Record<string, unknown> = {}): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code, errno: -1, ...fields });
}

/** What reportFailure printed and returned. */
function report(e: unknown): { code: number; printed: string } {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    return { code: reportFailure(e), printed: lines.join('') };
  } finally {
    spy.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('reportFailure: system failures a user can fix', () => {
  it('a full disk with a path is an I/O failure (exit 6) naming the path and the free space of its file system', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegate-enospc-'));
    try {
      const file = path.join(dir, 'blobs', 'sha256', 'abc');
      const { code, printed } = report(systemError('ENOSPC', 'no space left on device, write', { syscall: 'write', path: file }));
      expect(code).toBe(EXIT_CODES.IO);
      expect(code).toBe(6);
      expect(printed).toContain(`no space left on the device while writing ${file}`);
      // The file's directories do not exist: the free space is that of the nearest one that does.
      expect(printed).toMatch(/its file system: \d+\.\d MiB free of \d+\.\d MiB/);
      expect(printed).toContain('free some space there');
      expect(printed).not.toContain('internal error');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a full disk without a path (a stream write) is still exit 6, not an internal error', () => {
    const { code, printed } = report(systemError('ENOSPC', 'no space left on device, write', { syscall: 'write' }));
    expect(code).toBe(6);
    expect(printed).toContain('no space left on the device (ENOSPC); free some space');
    expect(printed).not.toContain('internal error');
  });

  it('a used-up quota reads as such', () => {
    const { code, printed } = report(systemError('EDQUOT', 'disk quota exceeded', { syscall: 'write', path: '/nonexistent-imagegate/x' }));
    expect(code).toBe(6);
    expect(printed).toContain('the disk quota is used up while writing /nonexistent-imagegate/x');
  });

  it('a port in use is a usage error (exit 2) naming the address', () => {
    const { code, printed } = report(systemError('EADDRINUSE', 'address already in use 127.0.0.1:8443', { syscall: 'listen', address: '127.0.0.1', port: 8443 }));
    expect(code).toBe(EXIT_CODES.USAGE);
    expect(printed).toBe('imagegate: 127.0.0.1:8443 is already in use by another process; stop that process or choose another port\n');
  });

  it('a permission problem on a named file is an I/O failure naming it', () => {
    const { code, printed } = report(systemError('EACCES', 'permission denied, open', { syscall: 'open', path: '/root/out/index.json' }));
    expect(code).toBe(6);
    expect(printed).toContain('permission denied on /root/out/index.json (EACCES)');
  });

  it('anything else stays an internal error, to be reported (guessing a remedy would mislead)', () => {
    for (const e of [new TypeError('x is not a function'), systemError('EBADF', 'bad file descriptor'), systemError('EIO', 'i/o error')]) {
      const { code, printed } = report(e);
      expect(code).toBe(1);
      expect(printed).toContain('internal error');
    }
  });

  it('our own typed errors are shown as they are', () => {
    const { code, printed } = report(new ImagegateError('BAD_KEY', 'k.pem is not a key'));
    expect(code).toBe(4);
    expect(printed).toBe('imagegate: k.pem is not a key\n');
  });
});

describe('noSpaceError and freeSpaceOf', () => {
  it('describe the file system of the nearest existing directory, with how the user named the destination', () => {
    expect(freeSpaceOf(path.join(os.tmpdir(), 'no', 'such', 'dir'))).toMatch(/^\d+\.\d MiB free of \d+\.\d MiB$/);
    const e = noSpaceError(new Error('ENOSPC'), path.join(os.tmpdir(), 'out'), 'oci:out:v1');
    expect(e.code).toBe('IO');
    expect(e.message).toMatch(/^oci:out:v1: no space left on the device while writing /);
  });
});
