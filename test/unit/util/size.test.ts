import { describe, expect, it } from 'vitest';
import { parseByteSize, parseCount } from '../../../src/util/size.js';

describe('parseByteSize', () => {
  it.each([
    ['8388608', 8388608],
    ['8M', 8 * 1024 ** 2],
    ['8MiB', 8 * 1024 ** 2],
    ['512k', 512 * 1024],
    ['1.5G', 1.5 * 1024 ** 3],
  ])('%s is %d bytes', (text, bytes) => expect(parseByteSize(text, '--chunk-size')).toBe(bytes));

  it.each(['', '0', '-1', '8X', 'lots', '1e9'])('refuses %j with a usage error naming the flag', (text) => {
    expect(() => parseByteSize(text, '--chunk-size')).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('--chunk-size') }));
  });
});

describe('parseCount', () => {
  it('accepts whole numbers in range and refuses others', () => {
    expect(parseCount('3', '--jobs', 1, 32)).toBe(3);
    for (const bad of ['0', '33', '2.5', 'x', '']) expect(() => parseCount(bad, '--jobs', 1, 32)).toThrow(/--jobs/);
  });
});
