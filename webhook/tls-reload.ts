import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { ImagegateError, isImagegateError, systemErrorCode } from '../src/errors.js';
import { unexpectedErrorRecord, type LogRecordWriter } from './request-log.js';

/**
 * The certificate the webhook serves, re-read when its files change: cert-manager and kubelet rotate them in place,
 * and a restart would drop the requests in flight.
 */
export class ServingCertificate {
  /** When the certificate being served expires (Unix seconds), for the expiry alert whatever issued it. */
  expirySeconds = 0;

  constructor(
    readonly certFile: string,
    readonly keyFile: string,
  ) {}

  /** The pair as the files hold it now, for the server to start with; the expiry follows it. Throws USAGE naming the wrong file. */
  read(): { cert: Buffer; key: Buffer } {
    const { cert, key, validTo } = readTlsPair(this.certFile, this.keyFile);
    this.expirySeconds = Date.parse(validTo) / 1000;
    return { cert, key };
  }

  /**
   * Polls both files every `pollMs` and gives `server` the new pair when either changes; a pair that does not
   * load (one file updated before the other) is logged and the old one kept. Returns what stops the polling.
   */
  reloadOnChange(server: { setSecureContext(options: SecureContextOptions): void }, pollMs: number, log: LogRecordWriter): () => void {
    const reload = (): void => {
      try {
        const { cert, key, validTo } = readTlsPair(this.certFile, this.keyFile);
        server.setSecureContext({ cert, key });
        // Only once the new pair serves: until then the gauge keeps telling when the old one expires.
        this.expirySeconds = Date.parse(validTo) / 1000;
        log({ level: 'info', msg: 'reloaded TLS certificate', cert: this.certFile });
      } catch (e) {
        // Expected while a rotation has written one file but not the other: not a bug to report.
        if (isImagegateError(e)) log({ level: 'warn', msg: 'could not reload TLS certificate; keeping the old one', code: e.code, error: e.message });
        else log(unexpectedErrorRecord('could not reload TLS certificate; keeping the old one', e));
      }
    };
    watchFile(this.certFile, { interval: pollMs, persistent: false }, reload);
    watchFile(this.keyFile, { interval: pollMs, persistent: false }, reload);
    return () => {
      unwatchFile(this.certFile, reload);
      unwatchFile(this.keyFile, reload);
    };
  }
}

/**
 * The serving certificate and key, checked one by one and as a pair, so a wrong file is named (at start-up exit 2;
 * on rotation the old pair stays). A key that does not match the certificate is the common case: cert-manager
 * or a hand-made secret updating one file before the other, or two files from different runs of openssl.
 */
function readTlsPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer; validTo: string } {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new ImagegateError('USAGE', `cannot read the TLS ${what} ${file} (${systemErrorCode(e) ?? String(e)}); check the --${what === 'certificate' ? 'cert' : 'key'} path`);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (e) {
    throw new ImagegateError('USAGE', `TLS certificate ${certFile} is not a PEM certificate (${(e as Error).message}); --cert takes the serving certificate, e.g. tls.crt`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new ImagegateError('USAGE', `TLS key ${keyFile} is not a PEM private key (${(e as Error).message}); --key takes the key of the serving certificate, e.g. tls.key`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ImagegateError(
      'USAGE',
      `TLS key ${keyFile} does not belong to certificate ${certFile} (its public key differs); give the key the certificate was issued for, from the same Secret or the same openssl run`,
    );
  }
  return { cert, key, validTo: certificate.validTo };
}
