import { describe, expect, it } from 'vitest';
import { formatTransitKey, parseTransitKey, readTransitKey, recipientFormOf } from '../../../src/vault/transit-key.js';

describe('Transit key spelling', () => {
  it('reads the short form a recipient takes, with mount transit when none is named', () => {
    expect(readTransitKey('app')).toEqual({ mount: 'transit', name: 'app' });
    expect(readTransitKey('transit-prod/app')).toEqual({ mount: 'transit-prod', name: 'app' });
    expect(readTransitKey('team/transit/app')).toEqual({ mount: 'team/transit', name: 'app' });
  });

  it('reads the long MOUNT/keys/NAME form as Vault spells the path, not as a mount ending in "keys"', () => {
    expect(readTransitKey('transit/keys/app')).toEqual({ mount: 'transit', name: 'app' });
    expect(readTransitKey('team/transit/keys/app.v2')).toEqual({ mount: 'team/transit', name: 'app.v2' });
  });

  it('refuses malformed names', () => {
    for (const bad of ['', '/', 'transit/', '/app', 'transit//app', 'has space', 'transit/keys/', '-app', 'a/keys/b/c%']) {
      expect(readTransitKey(bad), bad).toBeUndefined();
      expect(() => parseTransitKey(bad), bad).toThrow(/is not a Transit key: write MOUNT\/keys\/NAME or \[MOUNT\/\]NAME/);
    }
  });

  it('formats one spelling for output and comparison, and the recipient form for remedies; both read back', () => {
    for (const text of ['app', 'transit/keys/app', 'team/transit/app', 'team/transit/keys/app']) {
      const key = parseTransitKey(text);
      expect(parseTransitKey(formatTransitKey(key))).toEqual(key);
      expect(parseTransitKey(recipientFormOf(key))).toEqual(key);
    }
    expect(formatTransitKey({ mount: 'transit', name: 'app' })).toBe('transit/keys/app');
    expect(recipientFormOf({ mount: 'transit', name: 'app' })).toBe('transit/app');
  });
});
