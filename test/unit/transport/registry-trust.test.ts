import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { trustedCertificates } from '../../../src/transport/registry/trust.js';

describe('registry TLS trust', () => {
  it("adds --ca-cert to Node's roots (and the system store) instead of replacing them", () => {
    const extra = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const without = trustedCertificates(undefined);
    const withExtra = trustedCertificates(extra);
    expect(without).toEqual(expect.arrayContaining(tls.rootCertificates.slice(0, 3)));
    expect(withExtra).toEqual([...without, extra]);
    expect(without).not.toContain(extra);
  });
});

describe('registry TLS context', () => {
  it('is built once per set of CAs, not per connection', async () => {
    const { trustedContext } = await import('../../../src/transport/registry/trust.js');
    expect(trustedContext(undefined)).toBe(trustedContext(undefined));
    expect(trustedContext('x')).not.toBe(trustedContext(undefined));
  });
});
