import { X509Certificate } from 'node:crypto';
import { ImagegateError } from '../errors.js';
import { readUserFile } from './user-file.js';

/**
 * A CA certificate file named by `flag` (--ca-cert, --webhook-ca, --check-registry-ca), refused at once when it cannot
 * be read, is empty or holds no PEM certificate: otherwise the mistake shows only later, as an untrusted certificate
 * that blames the server.
 */
export async function readCaCertificateFile(file: string, flag: string): Promise<string> {
  const text = await readUserFile(file, (reason) => `${flag} ${file}: cannot read it (${reason})`);
  if (text.trim() === '') throw new ImagegateError('USAGE', `${flag} ${file} is empty; give the PEM file of the CA that signed the server's certificate`);
  const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  if (first === null) throw new ImagegateError('USAGE', `${flag} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA certificate, not a key or a DER file`);
  try {
    new X509Certificate(first[0]);
  } catch (e) {
    throw new ImagegateError('USAGE', `${flag} ${file}: its first certificate does not parse (${(e as Error).message})`);
  }
  return text;
}
