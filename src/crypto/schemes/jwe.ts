import type jose from 'node-jose';
import { ImagegateError } from '../../errors.js';
import { loadPublicKey, type LoadedKey } from '../key-files.js';
import { KEYS_ANNOTATION_PREFIX } from '../layer-options.js';
import type { KeyScheme, LayerKeyWrapper, RecipientContext, RecipientSummary } from './key-scheme.js';
import type { Keyring } from './keyring.js';

/**
 * The `jwe` scheme, written exactly as go-jose writes it for ocicrypt: A256GCM content encryption, RSA-OAEP for
 * RSA keys and ECDH-ES+A256KW for EC keys (unless a JWK names its own `alg`), flattened JSON for one recipient
 * and general JSON for several. Reading accepts what any ocicrypt wrote, but only the algorithms current
 * ocicrypt allows: no RSA1_5, no direct ECDH-ES.
 */
const KEY_ALGORITHMS = ['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'];
const CONTENT_ALGORITHMS = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512'];

type JweJson = Record<string, unknown>;

/** @types/node-jose omits per-recipient options (header, reference) and the JSON result type; this is the real shape. */
interface EncryptRecipient {
  key: jose.JWK.Key;
  header?: Record<string, string>;
  reference?: boolean;
}
type CreateEncrypt = (options: object, recipients: EncryptRecipient | EncryptRecipient[]) => { update(payload: Buffer): { final(): Promise<object> } };

let loading: Promise<typeof jose> | undefined;

/**
 * node-jose, loaded on first use: it costs about 8 MiB and tens of milliseconds at start-up, which the webhook, Vault
 * runs and an init container that never meet a jwe key should not pay.
 */
function loadJose(): Promise<typeof jose> {
  return (loading ??= import('node-jose').then((m) => m.default));
}

function wrapAlgorithm(r: LoadedKey): string {
  if (r.alg !== undefined) {
    if (!KEY_ALGORITHMS.includes(r.alg)) {
      throw new ImagegateError('BAD_KEY', `${r.source}: JWK alg ${JSON.stringify(r.alg)} cannot wrap layer keys; use one of ${KEY_ALGORITHMS.join(', ')}`);
    }
    return r.alg;
  }
  switch (r.key.asymmetricKeyType) {
    case 'rsa':
      return 'RSA-OAEP';
    case 'ec':
      return 'ECDH-ES+A256KW';
    default:
      throw new ImagegateError('BAD_KEY', `${r.source}: a ${r.key.asymmetricKeyType} key cannot be a jwe recipient; use an RSA or EC (P-256, P-384, P-521) key`);
  }
}

async function joseKey(k: LoadedKey): Promise<jose.JWK.Key> {
  return (await loadJose()).JWK.asKey(k.key.export({ format: 'jwk' }) as object);
}

/** Wraps once for all recipients: one item, as ocicrypt's jwe wrapper writes it. */
async function wrapForAll(privateOptions: Buffer, recipients: readonly LoadedKey[]): Promise<Buffer> {
  const keys = await Promise.all(
    recipients.map(async (r) => {
      const header: Record<string, string> = { alg: wrapAlgorithm(r) };
      if (r.kid !== undefined) header.kid = r.kid;
      return { key: await joseKey(r), header, reference: false as const };
    }),
  );
  const createEncrypt = (await loadJose()).JWE.createEncrypt as unknown as CreateEncrypt;
  let jwe: object;
  if (keys.length === 1) {
    const only = keys[0]!;
    jwe = await createEncrypt({ format: 'flattened', contentAlg: 'A256GCM', fields: only.header }, { key: only.key, reference: false })
      .update(privateOptions)
      .final();
  } else {
    jwe = await createEncrypt({ format: 'general', contentAlg: 'A256GCM', protect: ['enc'] }, keys).update(privateOptions).final();
  }
  return Buffer.from(JSON.stringify(jwe), 'utf8');
}

/** Tries every private key on one item; undefined when none of them is a recipient. */
async function unwrapItem(item: Buffer, keys: readonly LoadedKey[]): Promise<Buffer | undefined> {
  const input = parseJwe(item);
  for (const k of keys) {
    if (k.key.type !== 'private') continue;
    const jose = await loadJose();
    try {
      const key = await joseKey(k);
      const result = await jose.JWE.createDecrypt(key, { algorithms: [...KEY_ALGORITHMS, ...CONTENT_ALGORITHMS] }).decrypt(input as never);
      return Buffer.from(result.payload);
    } catch {
      // not a recipient, or not this key's algorithm: try the next key
    }
  }
  return undefined;
}

const JWE_SCHEME = 'jwe';

class JweScheme implements KeyScheme {
  readonly name = JWE_SCHEME;
  readonly annotation = `${KEYS_ANNOTATION_PREFIX}${JWE_SCHEME}`;
  readonly recipientPrefixes = [JWE_SCHEME];
  readonly recipientUsage = 'jwe:PUBLIC_KEY';
  readonly unwrapHint = 'Give the private key of one of its recipients with --key.';

  async recipients(values: readonly string[], _context: RecipientContext): Promise<LayerKeyWrapper> {
    return jweRecipients(await Promise.all(values.map((v) => loadPublicKey(v))));
  }

  async unwrap(items: readonly Buffer[], keyring: Keyring): Promise<Buffer | undefined> {
    for (const item of items) {
      const opts = await unwrapItem(item, keyring.privateKeys);
      if (opts !== undefined) return opts;
    }
    return undefined;
  }

  describe(item: Buffer): RecipientSummary[] {
    const jwe = parseJwe(item);
    if (typeof jwe === 'string') return [summary(decodeHeader(jwe.split('.')[0] ?? ''))];
    const shared = { ...decodeHeader(jwe.protected), ...asRecord(jwe.unprotected) };
    const recipients = Array.isArray(jwe.recipients) ? (jwe.recipients as unknown[]) : [{ header: jwe.header }];
    return recipients.map((r) => summary({ ...shared, ...asRecord(asRecord(r).header) }));
  }
}

/** The `jwe` scheme: wraps for public keys, unwraps with private key files. */
export const jweScheme: KeyScheme = new JweScheme();

/** Public keys already loaded, as jwe recipients: one item per layer wraps for all of them. */
export function jweRecipients(keys: readonly LoadedKey[]): LayerKeyWrapper {
  // Checked now, so an unusable key fails before the first layer is read, not after.
  keys.forEach(wrapAlgorithm);
  return { scheme: jweScheme, count: keys.length, wrap: async (privateOptions) => [await wrapForAll(privateOptions, keys)] };
}

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function decodeHeader(b64u: unknown): Record<string, unknown> {
  if (typeof b64u !== 'string') return {};
  try {
    return asRecord(JSON.parse(Buffer.from(b64u, 'base64url').toString('utf8')));
  } catch {
    return {};
  }
}

function summary(h: Record<string, unknown>): RecipientSummary {
  const out: RecipientSummary = { algorithm: typeof h.alg === 'string' ? h.alg : 'unknown' };
  const details: string[] = [];
  const epk = asRecord(h.epk);
  if (typeof epk.crv === 'string') details.push(epk.crv);
  if (typeof h.kid === 'string') details.push(`kid ${h.kid}`);
  if (details.length > 0) out.detail = details.join(', ');
  return out;
}

/**
 * Parses a JWE in JSON or compact serialisation. go-jose adds a top-level `encrypted_key` (a copy of the first
 * recipient's) to general JSON, which RFC 7516 does not allow and node-jose rejects; it is dropped here.
 */
export function parseJwe(item: Buffer): JweJson | string {
  const text = item.toString('utf8').trim();
  if (!text.startsWith('{')) {
    if (/^[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*){4}$/.test(text)) return text;
    throw new ImagegateError('BAD_FORMAT', 'a jwe annotation item is neither JSON nor compact JWE serialisation');
  }
  let jwe: JweJson;
  try {
    jwe = asRecord(JSON.parse(text));
  } catch {
    throw new ImagegateError('BAD_FORMAT', 'a jwe annotation item is not valid JSON');
  }
  if (Array.isArray(jwe.recipients)) {
    const { encrypted_key: _dropped, ...rest } = jwe;
    return rest;
  }
  return jwe;
}
