import { describe, expect, it } from 'vitest';
import { keyUnwrapResponse, keyWrapResponse, parseKeyProviderRequest } from '../../../src/keyprovider/protocol.js';

// The exact shapes ocicrypt's Go code marshals (reference/ocicrypt.md §5.3).
const wrapRequest = Buffer.from(
  '{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"imagegate":["dHJhbnNpdC9hcHBAcmVnL3RlYW0vYXBw"]},"DecryptConfig":{"Parameters":{}}},"optsdata":"eyJzeW1rZXkiOiJhYmMifQ=="},"keyunwrapparams":{"dc":null,"annotation":null}}',
);
const unwrapRequest = Buffer.from(
  '{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"imagegate":["RW5hYmxlZA=="]}},"annotation":"eyJ2IjoxfQ=="}}',
);

/**
 * Go's encoding/json writes a `[]byte` as padded base64, `""` when empty and `null` when nil, and `map[string][][]byte`
 * values as lists of those; structs tagged `omitempty` lose nil members altogether. These are the requests the Go
 * callers send (issue 13): imgcrypt's ctd-decoder and CRI-O with a keys directory (`utils.SortDecryptionKeys` leaves
 * `gpg-privatekeys: [""]`), and any caller with a PEM key without a password (`privkeys-passwords: [null]`).
 */
const ANNOTATION = 'eyJ2IjoxfQ=='; // {"v":1}
const goUnwrapRequests: Array<[string, unknown]> = [
  [
    'ctd-decoder with a keys directory: gpg-privatekeys [""]',
    { op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { 'gpg-privatekeys': [''], 'gpg-privatekeys-passwords': [''], imagegate: ['RW5hYmxlZA=='] } }, annotation: ANNOTATION } },
  ],
  [
    'skopeo 1.19 (ocicrypt 1.3.2) with --decryption-key KEY.pem beside the provider, as captured: privkeys-passwords [null]',
    { op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { privkeys: ['LS0tLS1CRUdJTg=='], 'privkeys-passwords': [null], imagegate: ['RW5hYmxlZA=='] } }, annotation: ANNOTATION } },
  ],
  ['omitempty: no keywrapparams, no Parameters', { op: 'keyunwrap', keyunwrapparams: { dc: {}, annotation: ANNOTATION } }],
  ['a nil DecryptConfig', { op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: null, annotation: ANNOTATION } }],
  ['a nil Parameters map and nil value list', { op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: null }, annotation: ANNOTATION } }],
  ['a nil value list for one scheme', { op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: { x509s: null, imagegate: [''] } }, annotation: ANNOTATION } }],
];

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

  it.each(goUnwrapRequests)('reads what Go sends: %s', (_name, request) => {
    const r = parseKeyProviderRequest(Buffer.from(JSON.stringify(request)));
    expect(r.op).toBe('keyunwrap');
    if (r.op !== 'keyunwrap') return;
    expect(r.annotation.toString()).toBe('{"v":1}');
    // Empty and nil byte strings read as empty buffers, nil lists as no values.
    for (const values of Object.values(r.parameters)) for (const v of values) expect(Buffer.isBuffer(v)).toBe(true);
  });

  it('reads "" and null inside Parameters as empty byte strings, in order', () => {
    const r = parseKeyProviderRequest(Buffer.from(JSON.stringify(goUnwrapRequests[1]![1])));
    expect(r.parameters['privkeys-passwords']).toEqual([Buffer.alloc(0)]);
    const g = parseKeyProviderRequest(Buffer.from(JSON.stringify(goUnwrapRequests[0]![1])));
    expect(g.parameters['gpg-privatekeys']).toEqual([Buffer.alloc(0)]);
    expect(g.parameters.imagegate?.[0]?.toString()).toBe('Enabled');
  });

  it('reads a keywrap request with omitted and nil members (provider:imagegate with no parameters: ["RW5hYmxlZA=="])', () => {
    const r = parseKeyProviderRequest(Buffer.from(JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: { imagegate: ['RW5hYmxlZA=='], pubkeys: null }, DecryptConfig: { Parameters: null } }, optsdata: 'YQ==' } })));
    expect(r).toMatchObject({ op: 'keywrap', optsData: Buffer.from('a') });
  });

  it('keeps a parameter named __proto__ as an entry', () => {
    const r = parseKeyProviderRequest(Buffer.from('{"op":"keyunwrap","keyunwrapparams":{"dc":{"Parameters":{"__proto__":["YQ=="]}},"annotation":"YQ=="}}'));
    expect(Object.keys(r.parameters)).toEqual(['__proto__']);
  });

  it('answers with padded standard base64, which Go requires', () => {
    expect(JSON.parse(keyWrapResponse(Buffer.from('ab')).toString())).toEqual({ keywrapresults: { annotation: 'YWI=' } });
    expect(JSON.parse(keyUnwrapResponse(Buffer.from('a')).toString())).toEqual({ keyunwrapresults: { optsdata: 'YQ==' } });
  });

  it.each([
    ['not JSON', 'nope', /is not JSON/],
    ['not an object', '[1]', /malformed the request/],
    ['an unknown op', '{"op":"rotate"}', /op "rotate"/],
    ['a keywrap with nil optsdata', '{"op":"keywrap","keywrapparams":{"ec":null,"optsdata":null}}', /keywrap with no keywrapparams.optsdata: there is no layer key to wrap/],
    ['a keywrap with empty optsdata', '{"op":"keywrap","keywrapparams":{"optsdata":""}}', /keywrap with no keywrapparams.optsdata/],
    ['a keyunwrap with no annotation', '{"op":"keyunwrap","keyunwrapparams":{"dc":null}}', /keyunwrap with no keyunwrapparams.annotation: there is no wrapped key to unwrap/],
    ['unpadded base64, which Go never writes', '{"op":"keyunwrap","keyunwrapparams":{"annotation":"YQ"}}', /keyunwrapparams.annotation that is not padded standard base64/],
    ['a number for bytes', '{"op":"keyunwrap","keyunwrapparams":{"dc":{"Parameters":{"x":[5]}},"annotation":"YQ=="}}', /keyunwrapparams.dc.Parameters.x\[0\] that is not padded standard base64/],
    ['bad parameters', '{"op":"keyunwrap","keyunwrapparams":{"dc":{"Parameters":{"x":"y"}},"annotation":"YQ=="}}', /malformed keyunwrapparams.dc.Parameters.x/],
    ['a dc that is not an object', '{"op":"keyunwrap","keyunwrapparams":{"dc":"x","annotation":"YQ=="}}', /malformed keyunwrapparams.dc/],
  ])('refuses %s with a clear error', (_name, text, message) => {
    expect(() => parseKeyProviderRequest(Buffer.from(text))).toThrow(message);
  });
});
