import { lstat, mkdir, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { loadPrivateKey } from '../crypto/key-files.js';
import { generateKeyPairFiles } from '../crypto/keygen.js';
import { prepareRecipients } from '../crypto/recipients.js';
import { Keyring } from '../crypto/schemes/keyring.js';
import { openDestination, withSource } from '../transport/transports.js';
import { decryptImage } from '../ops/decrypt.js';
import { encryptImage } from '../ops/encrypt.js';
import { inspectImage, type InspectReport } from '../ops/inspect.js';
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

  const recipients = await prepareRecipients([`jwe:${ec.publicKey}`, `jwe:${rsa.publicKey}`], { binding: undefined, keyring: new Keyring() });
  await withSource(plain, async (src) => encryptImage(src, await openDestination(encrypted), { recipients }));
  log(`imagegate encrypt ${plain} ${encrypted} --recipient jwe:${ec.publicKey} --recipient jwe:${rsa.publicKey}`);

  const keyring = new Keyring([await loadPrivateKey(ec.privateKey)]);
  const encryptedReport = await withSource(encrypted, async (src) => {
    const report = await inspectImage(src);
    await decryptImage(src, await openDestination(decrypted), { keyring });
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

/**
 * What the demo writes in its directory, and nothing else: `--force` removes only these, so a directory that holds
 * anything more (a user's files, a mistyped `..`) is refused instead of lost. `decrypted-skopeo` is the output of
 * the skopeo command the demo suggests; the hidden `.NAME.imagegate-*` ones are staging directories of a demo killed
 * part-way.
 */
const DEMO_OUTPUTS = ['alice.pem', 'alice.pub.pem', 'bob.pem', 'bob.pub.pem', 'sample', 'encrypted', 'decrypted', 'decrypted-skopeo'];
/** Written first into the demo's directory: the proof that `--force` may replace what is there. */
const DEMO_MARKER = '.imagegate-demo';
const MARKER_TEXT = 'Written by `imagegate demo`. `imagegate demo DIR --force` replaces what the demo wrote here, and refuses if anything else is here.\n';

function isDemoOutput(name: string): boolean {
  return name === DEMO_MARKER || DEMO_OUTPUTS.includes(name) || DEMO_OUTPUTS.some((o) => name.startsWith(`.${o}.imagegate-`));
}

/**
 * A working directory of the demo's own: new, empty, or (with `force`) one an earlier demo wrote, whose outputs are
 * then removed one by one. Never the root, the home directory, the working directory or one of its ancestors.
 */
async function prepareDirectory(dir: string, force: boolean): Promise<void> {
  const where = await realOrResolved(dir);
  await refuseShared(dir, where);
  let names: string[];
  try {
    names = await readdir(where);
  } catch (e) {
    const code = systemErrorCode(e);
    if (code === 'ENOTDIR') throw new ImagegateError('USAGE', `${dir} is a file, not a directory; name a new directory for the demo`);
    if (code !== 'ENOENT') throw e;
    names = [];
  }
  if (names.length > 0) {
    if (!force) {
      throw new ImagegateError('DESTINATION', `${dir} already exists and is not empty; pass --force to replace an earlier demo there, or name another directory`);
    }
    await checkDemoOwned(dir, where, names);
    for (const name of names) await rm(path.join(where, name), { recursive: true, force: true });
  }
  await mkdir(where, { recursive: true });
  await writeFile(path.join(where, DEMO_MARKER), MARKER_TEXT);
}

/** The directory with symbolic links resolved, so a link to $HOME is seen as $HOME; as given when it does not exist. */
async function realOrResolved(dir: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch {
    return path.resolve(dir);
  }
}

async function refuseShared(dir: string, where: string): Promise<void> {
  const cwd = await realOrResolved(process.cwd());
  const home = await realOrResolved(os.homedir());
  const why =
    where === path.parse(where).root
      ? 'the root directory'
      : where === home
        ? 'your home directory'
        : where === cwd
          ? 'the working directory'
          : cwd.startsWith(`${where}${path.sep}`)
            ? 'a parent of the working directory'
            : undefined;
  if (why !== undefined) {
    throw new ImagegateError('USAGE', `${dir} is ${why} (${where}); the demo needs a directory of its own: name a new one, e.g. imagegate demo ./imagegate-demo`);
  }
}

/** Refuses a directory unless an earlier demo wrote it (its marker) and it holds nothing but the demo's outputs. */
async function checkDemoOwned(dir: string, where: string, names: readonly string[]): Promise<void> {
  const marker = path.join(where, DEMO_MARKER);
  const isMarker = await lstat(marker).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!isMarker) {
    throw new ImagegateError(
      'USAGE',
      `${dir} was not written by imagegate demo (it has no ${DEMO_MARKER} file), so --force leaves it alone; name a new directory, or empty this one yourself`,
    );
  }
  const others = names.filter((n) => !isDemoOutput(n));
  if (others.length > 0) {
    const shown = others.slice(0, 5).join(', ') + (others.length > 5 ? `, and ${others.length - 5} more` : '');
    throw new ImagegateError(
      'USAGE',
      `${dir} holds files the demo did not write (${shown}), so --force leaves it alone; move them elsewhere, or name a new directory`,
    );
  }
}

async function layerDigests(image: string): Promise<string[]> {
  const report = await withSource(image, inspectImage);
  return report.images.flatMap((i) => i.layers.map((l) => l.digest));
}
