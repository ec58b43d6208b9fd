import { describe, expect, it } from 'vitest';
import { bindingContext, decodeVaultItem, describeVaultItem, encodeVaultItem } from '../../../src/crypto/schemes/vault-item.js';
import { parseTransitKey } from '../../../src/vault/transit-key.js';
import { Coalescer } from '../../../src/util/coalesce.js';
import { globToRegExp } from '../../../src/util/glob.js';

const item = { v: 1 as const, mount: 'transit', key: 'layers', version: 3, ciphertext: 'vault:v3:abcd', binding: 'reg.example/team/app' };

describe('Vault-wrapped key items', () => {
  it('round-trip and describe themselves without any key', () => {
    const bytes = encodeVaultItem(item);
    expect(decodeVaultItem(bytes, 'layer 0')).toEqual(item);
    expect(describeVaultItem(bytes)).toEqual([{ algorithm: 'vault-transit', detail: 'transit/keys/layers v3 bound to reg.example/team/app' }]);
  });

  it.each([
    ['not JSON', Buffer.from('x'), /is not JSON/],
    ['a newer format', Buffer.from('{"v":2}'), /format version 2.*upgrade/],
    ['no binding', Buffer.from(JSON.stringify({ ...item, binding: '' })), /no "binding"/],
    ['no Vault ciphertext', Buffer.from(JSON.stringify({ ...item, ciphertext: 'abc' })), /no Vault ciphertext/],
  ])('refuses %s', (_n, bytes, message) => {
    expect(() => decodeVaultItem(bytes, 'layer 0')).toThrow(message);
  });

  it('binds to the repository through the Transit context', () => {
    expect(bindingContext('reg/a').equals(bindingContext('reg/b'))).toBe(false);
    expect(bindingContext('reg/a').toString()).toBe('imagegate:v1:reg/a');
  });
});

describe('parseTransitKey', () => {
  it('defaults the mount to transit and keeps nested mounts', () => {
    expect(parseTransitKey('layers')).toEqual({ mount: 'transit', name: 'layers' });
    expect(parseTransitKey('team/transit/layers')).toEqual({ mount: 'team/transit', name: 'layers' });
  });

  it.each(['', 'a/', '../x', 'a b', 'x&y'])('refuses %j', (text) => {
    expect(() => parseTransitKey(text)).toThrow(/is not a Transit key/);
  });
});

describe('Coalescer', () => {
  it('sends the requests of one turn as one batch per group, and each caller gets its own result', async () => {
    const batches: Array<[string, number[]]> = [];
    const c = new Coalescer<string, number, number>(async (group, items) => {
      batches.push([group, items]);
      return items.map((i) => (i < 0 ? { ok: false as const, error: new Error(`bad ${i}`) } : { ok: true as const, value: i * 10 }));
    });
    const results = await Promise.allSettled([c.add('a', 'a', 1), c.add('a', 'a', 2), c.add('b', 'b', 3), c.add('a', 'a', -1)]);
    expect(batches).toEqual([
      ['a', [1, 2, -1]],
      ['b', [3]],
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([10, 20, 30, 'bad -1']);
  });
});

describe('globToRegExp', () => {
  it('matches * within a segment and ** across', () => {
    expect(globToRegExp('reg.example/prod/*').test('reg.example/prod/app')).toBe(true);
    expect(globToRegExp('reg.example/prod/*').test('reg.example/prod/team/app')).toBe(false);
    expect(globToRegExp('reg.example/prod/**').test('reg.example/prod/team/app')).toBe(true);
    expect(globToRegExp('reg.example/*').test('regXexample/a')).toBe(false);
  });
});
