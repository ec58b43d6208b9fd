import { ImagegateError } from '../errors.js';
import type { Digest } from '../image/digest.js';
import { LAYER_CIPHER, LAYER_HMAC_BYTES, type LayerSecret } from './layer-cipher.js';

/**
 * The two JSON documents ocicrypt attaches to an encrypted layer. The public options (cipher and HMAC) travel in
 * the clear as `org.opencontainers.image.enc.pubopts`; the private options (key, nonce, plain digest) are what
 * every key wrapper wraps. Field order and padded standard base64 match Go's encoding/json byte for byte.
 */
export const ENC_ANNOTATION_PREFIX = 'org.opencontainers.image.enc';
export const PUBOPTS_ANNOTATION = 'org.opencontainers.image.enc.pubopts';
export const KEYS_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.keys.';

export interface PublicOptions {
  cipher: string;
  hmac: Buffer;
  nonce?: Buffer; // ocicrypt reads the nonce from the public options first, if one is there
}

export interface PrivateOptions {
  secret: LayerSecret;
  /** The digest of the source blob as ocicrypt records it; informational, never trusted on decryption. */
  digest: string;
}

export function encodePublicOptions(hmac: Buffer): string {
  const json = JSON.stringify({ cipher: LAYER_CIPHER, hmac: hmac.toString('base64'), cipheroptions: {} });
  return Buffer.from(json, 'utf8').toString('base64');
}

export function encodePrivateOptions(secret: LayerSecret, sourceDigest: Digest): Buffer {
  const json = JSON.stringify({
    symkey: secret.key.toString('base64'),
    digest: sourceDigest,
    cipheroptions: { nonce: secret.nonce.toString('base64') },
  });
  return Buffer.from(json, 'utf8');
}

/** Go's encoding/json matches field names case-insensitively; so do we, to read what any ocicrypt wrote. */
function fieldCI(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Go decodes []byte from padded standard base64 only; accept exactly that and say which field was wrong. */
function decodeBase64(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) {
    throw new ImagegateError('BAD_FORMAT', `${what} is not padded standard base64`);
  }
  return Buffer.from(value, 'base64');
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ImagegateError('BAD_FORMAT', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function parseJsonBytes(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    return asObject(JSON.parse(bytes.toString('utf8')), what);
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    throw new ImagegateError('BAD_FORMAT', `${what} is not valid JSON`);
  }
}

export function decodePublicOptions(annotation: string | undefined, where: string): PublicOptions {
  if (annotation === undefined) {
    throw new ImagegateError('BAD_FORMAT', `${where}: the ${PUBOPTS_ANNOTATION} annotation is missing (no cipher type provided); this layer cannot be decrypted`);
  }
  const o = parseJsonBytes(decodeBase64(annotation, `${where}: ${PUBOPTS_ANNOTATION}`), `${where}: public options`);
  const cipher = fieldCI(o, 'cipher');
  if (cipher !== LAYER_CIPHER) {
    throw new ImagegateError('UNSUPPORTED', `${where}: unsupported layer cipher ${JSON.stringify(cipher)}; only ${LAYER_CIPHER} exists in ocicrypt`);
  }
  const hmacField = fieldCI(o, 'hmac');
  if (hmacField === undefined || hmacField === null || hmacField === '') {
    throw new ImagegateError('BAD_FORMAT', `${where}: HMAC is not provided for decryption`);
  }
  const hmac = decodeBase64(hmacField, `${where}: public options "hmac"`);
  if (hmac.length !== LAYER_HMAC_BYTES) throw new ImagegateError('BAD_FORMAT', `${where}: HMAC is ${hmac.length} bytes; need ${LAYER_HMAC_BYTES}`);
  const opts = fieldCI(o, 'cipheroptions');
  const out: PublicOptions = { cipher, hmac };
  if (opts !== undefined && opts !== null) {
    const nonce = fieldCI(asObject(opts, `${where}: public cipheroptions`), 'nonce');
    if (nonce !== undefined && nonce !== null) out.nonce = decodeBase64(nonce, `${where}: public cipheroptions.nonce`);
  }
  return out;
}

/** Parses unwrapped private options. Messages name the field but never echo key material. */
export function decodePrivateOptions(bytes: Buffer, pub: PublicOptions, where: string): PrivateOptions {
  const o = parseJsonBytes(bytes, `${where}: unwrapped private options`);
  const key = decodeBase64(fieldCI(o, 'symkey'), `${where}: private options "symkey"`);
  const digest = fieldCI(o, 'digest');
  const opts = fieldCI(o, 'cipheroptions');
  let nonce = pub.nonce;
  if (nonce === undefined && opts !== undefined && opts !== null) {
    const n = fieldCI(asObject(opts, `${where}: private cipheroptions`), 'nonce');
    if (n !== undefined && n !== null) nonce = decodeBase64(n, `${where}: private cipheroptions.nonce`);
  }
  if (nonce === undefined) throw new ImagegateError('BAD_FORMAT', `${where}: the layer's nonce is missing from its options`);
  return { secret: { key, nonce }, digest: typeof digest === 'string' ? digest : '' };
}
