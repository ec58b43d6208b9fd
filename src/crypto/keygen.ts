import { generateKeyPair } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ImagegateError, systemErrorCode } from '../errors.js';

export type KeyType = 'ec' | 'rsa';

export interface KeyGenOptions {
  /** `ec` or `rsa`; anything else is a usage error (it usually comes straight from a flag). */
  type: KeyType | string;
  curve?: string;
  bits?: number;
  overwrite?: boolean;
}

const CURVES = ['P-256', 'P-384', 'P-521'];
const RSA_BITS = [2048, 3072, 4096];
const generate = promisify(generateKeyPair);

/**
 * Writes `PREFIX.pem` (PKCS#8, readable by the owner only) and `PREFIX.pub.pem` (SPKI). These are the encodings
 * every ocicrypt version reads (Debian's skopeo rejects SEC1 and encrypted PKCS#8), so the pair works everywhere.
 */
export async function generateKeyPairFiles(prefix: string, options: KeyGenOptions): Promise<{ privateKey: string; publicKey: string }> {
  let pair: { privateKey: string; publicKey: string };
  if (options.type === 'ec') {
    const curve = options.curve ?? 'P-256';
    if (!CURVES.includes(curve)) throw new ImagegateError('USAGE', `--curve must be one of ${CURVES.join(', ')}, got ${JSON.stringify(curve)}`);
    pair = await generate('ec', { namedCurve: curve, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  } else if (options.type === 'rsa') {
    const bits = options.bits ?? 3072;
    if (!RSA_BITS.includes(bits)) throw new ImagegateError('USAGE', `--bits must be one of ${RSA_BITS.join(', ')}, got ${bits}`);
    pair = await generate('rsa', { modulusLength: bits, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  } else {
    throw new ImagegateError('USAGE', `--type must be ec or rsa, got ${JSON.stringify(options.type)}`);
  }
  const files = { privateKey: `${prefix}.pem`, publicKey: `${prefix}.pub.pem` };
  const flag = options.overwrite ? 'w' : 'wx';
  try {
    await writeFile(files.privateKey, pair.privateKey, { mode: 0o600, flag });
    await writeFile(files.publicKey, pair.publicKey, { mode: 0o644, flag });
  } catch (e) {
    if (systemErrorCode(e) === 'EEXIST') throw new ImagegateError('DESTINATION', `${prefix}.pem or ${prefix}.pub.pem already exists; choose another --out or pass --force`);
    throw new ImagegateError('IO', `cannot write key files: ${(e as Error).message}`);
  }
  return files;
}
