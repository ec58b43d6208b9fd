import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { loadPrivateKey, loadPublicKey } from '../crypto/key-files.js';
import { generateKeyPairFiles } from '../crypto/keygen.js';
import { JweKeyWrapper } from '../crypto/wrappers/jwe.js';
import { openDestination, withSource } from '../transport/transports.js';
import { decryptImage } from './decrypt.js';
import { encryptImage } from './encrypt.js';
import { inspectImage, type InspectReport } from './inspect.js';
import { writeSampleImage } from './sample-image.js';

export interface QuickstartReport {
  plain: string;
  encrypted: string;
  decrypted: string;
  keys: { ec: string; rsa: string };
  encryptedReport: InspectReport;
  /** True when every decrypted layer is byte-identical (same digest) to the original. */
  roundTripIdentical: boolean;
}

/**
 * The quick start, end to end: generate two key pairs (EC and RSA), build a sample image, encrypt it for both,
 * inspect it, decrypt it with one key and check the layers came back byte for byte.
 */
export async function runQuickstart(dir: string, log: (line: string) => void, options: { force?: boolean } = {}): Promise<QuickstartReport> {
  await prepareDirectory(dir, options.force === true);
  const ecPrefix = path.join(dir, 'alice');
  const rsaPrefix = path.join(dir, 'bob');
  const ec = await generateKeyPairFiles(ecPrefix, { type: 'ec', curve: 'P-256' });
  const rsa = await generateKeyPairFiles(rsaPrefix, { type: 'rsa', bits: 3072 });
  log(`generated key pairs ${ec.privateKey} (EC P-256) and ${rsa.privateKey} (RSA 3072)`);

  const plain = `oci:${path.join(dir, 'sample')}:1.0`;
  const encrypted = `oci:${path.join(dir, 'encrypted')}:1.0`;
  const decrypted = `oci:${path.join(dir, 'decrypted')}:1.0`;
  await writeSampleImage(path.join(dir, 'sample'), '1.0');
  log(`built a two-layer sample image at ${plain}`);

  const wrapper = new JweKeyWrapper();
  const recipients = [{ wrapper, recipients: [await loadPublicKey(ec.publicKey), await loadPublicKey(rsa.publicKey)] }];
  await withSource(plain, async (src) => encryptImage(src, await openDestination(encrypted), { recipients }));
  log(`imagegate encrypt ${plain} ${encrypted} --recipient jwe:${ec.publicKey} --recipient jwe:${rsa.publicKey}`);

  const keys = [await loadPrivateKey(ec.privateKey)];
  const encryptedReport = await withSource(encrypted, async (src) => {
    const report = await inspectImage(src);
    await decryptImage(src, await openDestination(decrypted), { keys });
    return report;
  });
  log(`imagegate decrypt ${encrypted} ${decrypted} --key ${ec.privateKey}`);

  const before = await layerDigests(plain);
  const after = await layerDigests(decrypted);
  const roundTripIdentical = before.length === after.length && before.every((d, i) => d === after[i]);
  if (!roundTripIdentical) {
    throw new ImagegateError('INTEGRITY', 'the decrypted layers differ from the original ones; this is a bug, please report it');
  }
  return { plain, encrypted, decrypted, keys: { ec: ec.privateKey, rsa: rsa.privateKey }, encryptedReport, roundTripIdentical };
}

/** A fresh working directory: refuses to mix with earlier files unless `force` clears them first. */
async function prepareDirectory(dir: string, force: boolean): Promise<void> {
  if (force) await rm(dir, { recursive: true, force: true });
  try {
    if ((await readdir(dir)).length > 0) {
      throw new ImagegateError('DESTINATION', `${dir} already exists and is not empty; pass --force to start over or name another directory`);
    }
  } catch (e) {
    if (systemErrorCode(e) !== 'ENOENT') throw e;
  }
  await mkdir(dir, { recursive: true });
}

async function layerDigests(image: string): Promise<string[]> {
  const report = await withSource(image, inspectImage);
  return report.images.flatMap((i) => i.layers.map((l) => l.digest));
}
