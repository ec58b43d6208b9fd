import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ImagegateError, systemErrorCode } from '../errors.js';

/**
 * Key files as users have them: PEM (SPKI, PKCS#8, PKCS#1 RSA, SEC1 EC), DER, or JWK JSON. The parsed key keeps
 * the JWK `alg` and `kid` when the file had them, since ocicrypt honours a JWK's `alg` for wrapping.
 */
export interface LoadedKey {
  key: KeyObject;
  /** Where the key came from, for messages. Never the key itself. */
  source: string;
  alg?: string;
  kid?: string;
}

const MAX_KEY_FILE_BYTES = 1024 * 1024;

async function readKeyFile(file: string): Promise<Buffer> {
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_KEY_FILE_BYTES) throw new ImagegateError('BAD_KEY', `${file} is ${bytes.length} bytes; that is not a key file`);
    return bytes;
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    if (systemErrorCode(e) === 'ENOENT') throw new ImagegateError('BAD_KEY', `key file ${file} does not exist`);
    throw new ImagegateError('BAD_KEY', `cannot read key file ${file}: ${(e as Error).message}`);
  }
}

interface PemBlock {
  label: string;
  text: string;
}

/** PEM blocks in file order; files from `openssl ecparam -genkey` start with an EC PARAMETERS block. */
function pemBlocks(text: string): PemBlock[] {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
  const out: PemBlock[] = [];
  for (const m of text.matchAll(re)) {
    out.push({ label: m[1]!, text: m[0] });
  }
  return out;
}

function tryJwk(bytes: Buffer): JsonWebKey | undefined {
  const text = bytes.toString('utf8').trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const jwk = JSON.parse(text) as unknown;
    return typeof jwk === 'object' && jwk !== null && 'kty' in jwk ? (jwk as JsonWebKey) : undefined;
  } catch {
    return undefined;
  }
}

function keyBlock(file: string, blocks: PemBlock[]): PemBlock {
  const block = blocks.find((b) => b.label.endsWith('KEY'));
  if (block === undefined) {
    throw new ImagegateError('BAD_KEY', `${file} has no PEM key block (found ${blocks.map((b) => b.label).join(', ') || 'none'}); give a PEM, DER or JWK key`);
  }
  if (block.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block.text)) {
    throw new ImagegateError(
      'BAD_KEY',
      `${file} is a passphrase-protected private key, which imagegate does not read yet; export it without a passphrase (openssl pkey -in ${file} -out plain.pem) and keep that file protected`,
    );
  }
  return block;
}

function describe(file: string, e: unknown): ImagegateError {
  return new ImagegateError('BAD_KEY', `${file} is not a usable key: ${(e as Error).message}`);
}

/** Loads a private key (for decryption). */
export async function loadPrivateKey(file: string): Promise<LoadedKey> {
  const bytes = await readKeyFile(file);
  const jwk = tryJwk(bytes);
  try {
    if (jwk !== undefined) {
      if (jwk.d === undefined) throw new ImagegateError('BAD_KEY', `${file} is a public JWK; decryption needs the private key`);
      return withJwkMeta({ key: createPrivateKey({ key: jwk, format: 'jwk' }), source: file }, jwk);
    }
    const blocks = pemBlocks(bytes.toString('latin1'));
    if (blocks.length === 0) return { key: derPrivateKey(bytes), source: file };
    const block = keyBlock(file, blocks);
    if (block.label.includes('PUBLIC')) {
      throw new ImagegateError('BAD_KEY', `${file} holds a public key; decryption needs the private key (give it with --key)`);
    }
    return { key: createPrivateKey(block.text), source: file };
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    throw describe(file, e);
  }
}

function derPrivateKey(bytes: Buffer): KeyObject {
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: bytes, format: 'der', type });
    } catch {
      // try the next encoding, as ocicrypt does: PKCS#8, then PKCS#1, then SEC1
    }
  }
  throw new Error('not a PEM, DER (PKCS#8, PKCS#1, SEC1) or JWK private key');
}

/** Loads a public key (a recipient). A private key file is accepted too; its public half is used. */
export async function loadPublicKey(file: string): Promise<LoadedKey> {
  const bytes = await readKeyFile(file);
  const jwk = tryJwk(bytes);
  try {
    if (jwk !== undefined) {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
      return withJwkMeta({ key: createPublicKey({ key: pub, format: 'jwk' }), source: file }, jwk);
    }
    const blocks = pemBlocks(bytes.toString('latin1'));
    if (blocks.length === 0) return { key: derPublicKey(bytes), source: file };
    const block = keyBlock(file, blocks);
    if (block.label === 'CERTIFICATE') throw new ImagegateError('BAD_KEY', `${file} is a certificate; give its public key (openssl x509 -pubkey -noout)`);
    return { key: createPublicKey(block.text), source: file };
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    throw describe(file, e);
  }
}

function derPublicKey(bytes: Buffer): KeyObject {
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return createPublicKey({ key: bytes, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  try {
    return createPublicKey(derPrivateKey(bytes));
  } catch {
    throw new Error('not a PEM, DER (SPKI, PKCS#1) or JWK public key');
  }
}

function withJwkMeta(k: LoadedKey, jwk: JsonWebKey): LoadedKey {
  if (typeof jwk.alg === 'string') k.alg = jwk.alg;
  if (typeof jwk.kid === 'string') k.kid = jwk.kid;
  return k;
}
