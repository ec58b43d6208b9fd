import { describe, expect, it } from 'vitest';
import { ImagegateError } from '../../../src/errors.js';
import type { ItemResult } from '../../../src/util/coalesce.js';
import { DerivedKeysOnly } from '../../../src/vault/derived-key.js';
import type { Transit, WrappedByTransit } from '../../../src/vault/transit.js';
import type { TransitKey } from '../../../src/vault/transit-key.js';

const KEY: TransitKey = { mount: 'transit', name: 'app' };
const MISSING_CONTEXT = "missing 'context' for key derivation; the key was created using a derived key";

/**
 * A stand-in for Transit that answers as OpenBao does for a derived key (context required, the wrong context fails)
 * or for one that is not derived (context ignored). The integration tests run the same against OpenBao itself.
 */
function fakeTransit(derived: boolean, calls: string[]): Transit {
  const fail = (message: string): ItemResult<never> => ({ ok: false, error: new ImagegateError('VAULT', `Vault answered ${message}`) });
  return {
    async encrypt(_key: TransitKey, items: Array<{ plaintext: Buffer; context?: Buffer }>): Promise<Array<ItemResult<WrappedByTransit>>> {
      calls.push(`encrypt ${items.length}`);
      return items.map((i) =>
        derived && i.context === undefined ? fail(MISSING_CONTEXT) : { ok: true, value: { ciphertext: `vault:v1:${i.plaintext.toString('base64')}|${i.context?.toString() ?? ''}`, keyVersion: 1 } },
      );
    },
    async decrypt(_key: TransitKey, items: Array<{ ciphertext: string; context?: Buffer }>): Promise<Array<ItemResult<Buffer>>> {
      calls.push(`decrypt ${items.length}`);
      return items.map((i) => {
        const [body, context] = i.ciphertext.slice('vault:v1:'.length).split('|');
        if (derived && i.context?.toString() !== context) return fail('cipher: message authentication failed');
        return { ok: true, value: Buffer.from(body!, 'base64') };
      });
    },
  } as unknown as Transit;
}

describe('DerivedKeysOnly', () => {
  it('wraps with a derived key, probing once per key after the first batch', async () => {
    const calls: string[] = [];
    const keys = new DerivedKeysOnly(fakeTransit(true, calls));
    const items = [{ plaintext: Buffer.from('k1'), context: Buffer.from('c') }];
    expect((await keys.encrypt(KEY, items))[0]).toMatchObject({ ok: true });
    expect((await keys.encrypt(KEY, items))[0]).toMatchObject({ ok: true });
    expect(calls).toEqual(['encrypt 1', 'encrypt 1', 'encrypt 1']);
  });

  it('refuses to wrap with a key that is not derived, saying how to make one', async () => {
    const keys = new DerivedKeysOnly(fakeTransit(false, []));
    await expect(keys.encrypt(KEY, [{ plaintext: Buffer.from('k1'), context: Buffer.from('c') }])).rejects.toMatchObject({
      code: 'BAD_KEY',
      message: expect.stringMatching(/^transit\/keys\/app is not a derived Transit key.*`vault write transit\/keys\/NEW_NAME derived=true`.*`imagegate vault setup`/),
    });
  });

  it('passes on a probe error that is not about the context (e.g. permission denied): the caller sees it', async () => {
    const transit = fakeTransit(true, []);
    const denied = new ImagegateError('AUTH', 'denied transit/encrypt/app');
    transit.encrypt = async (_k, items) => items.map((i) => (i.context === undefined ? { ok: false, error: denied } : { ok: true, value: { ciphertext: 'vault:v1:x', keyVersion: 1 } }));
    await expect(new DerivedKeysOnly(transit).encrypt(KEY, [{ plaintext: Buffer.from('k'), context: Buffer.from('c') }])).rejects.toBe(denied);
  });

  it('unwraps with a derived key in one batch: the probe item fails and is dropped', async () => {
    const calls: string[] = [];
    const keys = new DerivedKeysOnly(fakeTransit(true, calls));
    const results = await keys.decrypt(KEY, [
      { ciphertext: `vault:v1:${Buffer.from('k1').toString('base64')}|c1`, context: Buffer.from('c1') },
      { ciphertext: `vault:v1:${Buffer.from('k2').toString('base64')}|c2`, context: Buffer.from('c2') },
    ]);
    expect(results.map((r) => (r.ok ? r.value.toString() : 'error'))).toEqual(['k1', 'k2']);
    expect(calls).toEqual(['decrypt 3']);
  });

  it('refuses to unwrap with a key that is not derived, and wipes what Vault returned', async () => {
    const transit = fakeTransit(false, []);
    const returned: Buffer[] = [];
    const decrypt = transit.decrypt.bind(transit);
    transit.decrypt = async (k, items) => {
      const r = await decrypt(k, items);
      for (const x of r) if (x.ok) returned.push(x.value);
      return r;
    };
    await expect(new DerivedKeysOnly(transit).decrypt(KEY, [{ ciphertext: `vault:v1:${Buffer.from('secret').toString('base64')}|c`, context: Buffer.from('c') }])).rejects.toMatchObject({ code: 'BAD_KEY' });
    expect(returned.length).toBe(2);
    for (const b of returned) expect(b.every((x) => x === 0)).toBe(true);
  });
});
