import { describe, expect, it } from 'vitest';
import { keyUnwrapResponse, keyWrapResponse, parseKeyProviderRequest } from '../../../src/keyprovider/protocol.js';

// The exact shapes ocicrypt's Go code marshals (reference/ocicrypt.md §5.3).
const wrapRequest = Buffer.from(
  '{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"imagegate":["dHJhbnNpdC9hcHBAcmVnL3RlYW0vYXBw"]},"DecryptConfig":{"Parameters":{}}},"optsdata":"eyJzeW1rZXkiOiJhYmMifQ=="},"keyunwrapparams":{"dc":null,"annotation":null}}',
);
const unwrapRequest = Buffer.from(
  '{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"imagegate":["RW5hYmxlZA=="]}},"annotation":"eyJ2IjoxfQ=="}}',
);

describe('key-provider protocol', () => {
  it('reads a keywrap request as ocicrypt sends it', () => {
    const r = parseKeyProviderRequest(wrapRequest);
    expect(r.op).toBe('keywrap');
    if (r.op !== 'keywrap') return;
    expect(r.optsData.toString()).toBe('{"symkey":"abc"}');
    expect(r.parameters.imagegate?.[0]?.toString()).toBe('transit/app@reg/team/app');
  });

  it('reads a keyunwrap request, with a null DecryptConfig elsewhere', () => {
    const r = parseKeyProviderRequest(unwrapRequest);
    expect(r).toMatchObject({ op: 'keyunwrap' });
    if (r.op !== 'keyunwrap') return;
    expect(r.annotation.toString()).toBe('{"v":1}');
    expect(r.parameters.imagegate?.[0]?.toString()).toBe('Enabled');
  });

  it('answers with padded standard base64, which Go requires', () => {
    expect(JSON.parse(keyWrapResponse(Buffer.from('ab')).toString())).toEqual({ keywrapresults: { annotation: 'YWI=' } });
    expect(JSON.parse(keyUnwrapResponse(Buffer.from('a')).toString())).toEqual({ keyunwrapresults: { optsdata: 'YQ==' } });
  });

  it.each([
    ['not JSON', 'nope', /is not JSON/],
    ['an unknown op', '{"op":"rotate"}', /op "rotate"/],
    ['no optsdata', '{"op":"keywrap","keywrapparams":{"ec":null,"optsdata":null}}', /no base64 keywrapparams.optsdata/],
    ['bad parameters', '{"op":"keyunwrap","keyunwrapparams":{"dc":{"Parameters":{"x":"y"}},"annotation":"YQ=="}}', /malformed keyunwrapparams.dc.Parameters.x/],
  ])('refuses %s with a clear error', (_name, text, message) => {
    expect(() => parseKeyProviderRequest(Buffer.from(text))).toThrow(message);
  });
});
