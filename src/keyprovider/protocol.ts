import { ImagegateError } from '../errors.js';

/**
 * The ocicrypt key-provider protocol (containers/ocicrypt keywrap/keyprovider, docs/keyprovider.md): one JSON
 * request in, one JSON answer out, over a command's stdin/stdout or the `bytes` field of a gRPC message.
 *
 * Go marshals every `[]byte` with encoding/json, and `Parameters` as `map[string][][]byte`, so each byte field
 * arrives in one of three shapes: padded standard base64, `""` for an empty slice, `null` for a nil one (or no
 * member at all, with `omitempty` or an older struct). Real requests use all three: imgcrypt's ctd-decoder and
 * CRI-O send `"gpg-privatekeys": [""]` with a keys directory, and `"privkeys-passwords": [null]` for a PEM key
 * without a password (issue 13). Every field is read that way; whether an empty value makes sense is decided by
 * the operation that needs it, not by the parser.
 */
export type KeyProviderRequest =
  | { op: 'keywrap'; optsData: Buffer; parameters: Record<string, Buffer[]> }
  | { op: 'keyunwrap'; annotation: Buffer; parameters: Record<string, Buffer[]> };

/** Requests are a few KiB; a huge one is not from ocicrypt. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

type Bad = (why: string) => ImagegateError;

export function parseKeyProviderRequest(bytes: Buffer): KeyProviderRequest {
  const bad: Bad = (why) => new ImagegateError('BAD_FORMAT', `key-provider request ${why}`);
  if (bytes.length > MAX_REQUEST_BYTES) throw bad(`is ${bytes.length} bytes, more than ${MAX_REQUEST_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad('is not JSON');
  }
  const json = goStruct(parsed, 'the request', bad);
  if (json.op === 'keywrap') {
    const params = goStruct(json.keywrapparams, 'keywrapparams', bad);
    const optsData = goBytes(params.optsdata, 'keywrapparams.optsdata', bad);
    if (optsData.length === 0) throw bad('is a keywrap with no keywrapparams.optsdata: there is no layer key to wrap');
    const ec = goStruct(params.ec, 'keywrapparams.ec', bad);
    return { op: 'keywrap', optsData, parameters: goParameters(ec.Parameters, 'keywrapparams.ec.Parameters', bad) };
  }
  if (json.op === 'keyunwrap') {
    const params = goStruct(json.keyunwrapparams, 'keyunwrapparams', bad);
    const annotation = goBytes(params.annotation, 'keyunwrapparams.annotation', bad);
    if (annotation.length === 0) throw bad('is a keyunwrap with no keyunwrapparams.annotation: there is no wrapped key to unwrap');
    const dc = goStruct(params.dc, 'keyunwrapparams.dc', bad);
    return { op: 'keyunwrap', annotation, parameters: goParameters(dc.Parameters, 'keyunwrapparams.dc.Parameters', bad) };
  }
  throw bad(`has op ${JSON.stringify(json.op)}; expected "keywrap" or "keyunwrap"`);
}

export function keyWrapResponse(annotation: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ keywrapresults: { annotation: annotation.toString('base64') } }));
}

export function keyUnwrapResponse(optsData: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ keyunwrapresults: { optsdata: optsData.toString('base64') } }));
}

/** A Go struct or pointer to one: an object, or `null`/absent for a nil pointer (read as no fields). */
function goStruct(v: unknown, field: string, bad: Bad): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`has a malformed ${field} (not an object)`);
  return v as Record<string, unknown>;
}

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A Go `[]byte`: padded standard base64, `""` (empty) or `null`/absent (nil); both of the latter read as empty. */
function goBytes(v: unknown, field: string, bad: Bad): Buffer {
  if (v === undefined || v === null) return Buffer.alloc(0);
  if (typeof v !== 'string' || !STD_BASE64.test(v)) throw bad(`has a ${field} that is not padded standard base64`);
  return Buffer.from(v, 'base64');
}

/** A Go `map[string][][]byte`: nil map → no entries, nil inner slice → no values, nil or empty `[]byte` → empty. */
function goParameters(v: unknown, field: string, bad: Bad): Record<string, Buffer[]> {
  const map = goStruct(v, field, bad);
  // A provider named "__proto__" must be an entry, not a prototype.
  const out: Record<string, Buffer[]> = Object.create(null) as Record<string, Buffer[]>;
  for (const [name, values] of Object.entries(map)) {
    if (values === null) {
      out[name] = [];
      continue;
    }
    if (!Array.isArray(values)) throw bad(`has a malformed ${field}.${name} (not a list)`);
    out[name] = values.map((x, i) => goBytes(x, `${field}.${name}[${i}]`, bad));
  }
  return out;
}
