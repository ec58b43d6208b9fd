import { ImagegateError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** Parses a byte size as users write it: `8388608`, `8M`, `8MiB`, `512k`; binary units, as in skopeo and docker. */
export function parseByteSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  const bytes = m !== null && unit !== undefined ? Math.round(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new ImagegateError('USAGE', `${what} ${JSON.stringify(text)} is not a size; write bytes or a number with K, M or G (binary units), e.g. 8M`);
  }
  return bytes;
}

/** "12.3 MiB": a size in messages about disk space, one decimal, whatever its magnitude. */
export function formatMebibytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Parses a whole number within [min, max] from a flag. */
export function parseCount(text: string, what: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ImagegateError('USAGE', `${what} ${JSON.stringify(text)} must be a whole number from ${min} to ${max}`);
  }
  return n;
}
