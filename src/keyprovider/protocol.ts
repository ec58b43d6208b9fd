import { ImagegateError } from '../errors.js';

/**
 * The ocicrypt key-provider protocol (containers/ocicrypt keywrap/keyprovider, docs/keyprovider.md): one JSON
 * request in, one JSON answer out, over a command's stdin/stdout or the `bytes` field of a gRPC message. Go marshals
 * `[]byte` as padded standard base64, and `Parameters` as `map[string][][]byte`.
 */
export type KeyProviderRequest =
  | { op: 'keywrap'; optsData: Buffer; parameters: Record<string, Buffer[]> }
  | { op: 'keyunwrap'; annotation: Buffer; parameters: Record<string, Buffer[]> };

/** Requests are a few KiB; a huge one is not from ocicrypt. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

export function parseKeyProviderRequest(bytes: Buffer): KeyProviderRequest {
  const bad = (why: string): ImagegateError => new ImagegateError('BAD_FORMAT', `key-provider request ${why}`);
  if (bytes.length > MAX_REQUEST_BYTES) throw bad(`is ${bytes.length} bytes, more than ${MAX_REQUEST_BYTES}`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('is not JSON');
  }
  const object = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  if (json.op === 'keywrap') {
    const params = object(json.keywrapparams);
    const optsData = base64Field(params?.optsdata, 'keywrapparams.optsdata', bad);
    return { op: 'keywrap', optsData, parameters: parametersOf(object(params?.ec)?.Parameters, 'keywrapparams.ec.Parameters', bad) };
  }
  if (json.op === 'keyunwrap') {
    const params = object(json.keyunwrapparams);
    const annotation = base64Field(params?.annotation, 'keyunwrapparams.annotation', bad);
    return { op: 'keyunwrap', annotation, parameters: parametersOf(object(params?.dc)?.Parameters, 'keyunwrapparams.dc.Parameters', bad) };
  }
  throw bad(`has op ${JSON.stringify(json.op)}; expected "keywrap" or "keyunwrap"`);
}

export function keyWrapResponse(annotation: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ keywrapresults: { annotation: annotation.toString('base64') } }));
}

export function keyUnwrapResponse(optsData: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ keyunwrapresults: { optsdata: optsData.toString('base64') } }));
}

function base64Field(v: unknown, field: string, bad: (why: string) => ImagegateError): Buffer {
  if (typeof v !== 'string' || v === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw bad(`has no base64 ${field}`);
  return Buffer.from(v, 'base64');
}

function parametersOf(v: unknown, field: string, bad: (why: string) => ImagegateError): Record<string, Buffer[]> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`has a malformed ${field}`);
  const out: Record<string, Buffer[]> = {};
  for (const [name, values] of Object.entries(v as Record<string, unknown>)) {
    if (!Array.isArray(values)) throw bad(`has a malformed ${field}.${name}`);
    out[name] = values.map((x) => base64Field(x, `${field}.${name}`, bad));
  }
  return out;
}
