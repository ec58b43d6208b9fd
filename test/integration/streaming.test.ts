/**
 * Memory must not grow with layer size. The bound is asserted on what the pipeline holds at once, counted inside the
 * process: bytes read from the source minus bytes the destination has taken, at every moment of a 512 MiB layer's
 * encryption and decryption. Backpressure fixes that number whatever else the machine is doing; a peak-RSS bound
 * does not (a busy 2-core machine let the GC fall behind and failed CI), so RSS is measured by the benchmarks.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, loadPublicKey } from '../../src/crypto/key-files.js';
import { jweRecipients } from '../../src/crypto/schemes/jwe.js';
import { Keyring } from '../../src/crypto/schemes/keyring.js';
import { decryptImage } from '../../src/ops/decrypt.js';
import { encryptImage } from '../../src/ops/encrypt.js';
import { openDestination, openSource } from '../../src/transport/transports.js';
import { writeBigLayerLayout } from '../support/image-builder.js';
import { CLI } from '../support/imagegate.js';
import { InFlightMeter, metered } from '../support/in-flight.js';
import { makeKeyPair, tempDir, testTempDir, type KeyPairFiles, type TempDir } from '../support/tools.js';

const MiB = 1024 * 1024;
const LAYER_BYTES = 512 * MiB;

/** Encrypts or decrypts `from` into `to` in this process, one blob at a time, and returns the in-flight peak. */
async function peakInFlight(op: 'encrypt' | 'decrypt', from: string, to: string, key: KeyPairFiles): Promise<number> {
  const meter = new InFlightMeter();
  const source = await openSource(from);
  const destination = meter.wrap(await openDestination(to));
  const common = metered(meter);
  try {
    if (op === 'encrypt') {
      await encryptImage(source, destination, { ...common, recipients: [jweRecipients([await loadPublicKey(key.publicKeyPath)])] });
    } else {
      await decryptImage(source, destination, { ...common, keyring: new Keyring([await loadPrivateKey(key.privateKeyPath)]) });
    }
  } finally {
    await source.close();
  }
  return meter.peak;
}

describe('streaming', () => {
  let work: TempDir;
  let key: KeyPairFiles;
  beforeAll(async () => {
    work = await tempDir('imagegate-stream-');
    key = await makeKeyPair(work.path, 'rsa');
    await writeBigLayerLayout(path.join(work.path, 'big'), LAYER_BYTES, { compression: 'none', tag: 'v1' });
  });
  afterAll(async () => work?.cleanup());

  it('stops on Ctrl-C (SIGINT) with exit code 130 and leaves no output or staging directory', async () => {
    const dir = path.join(work.path, 'big');
    const out = await testTempDir('sigint-');
    const child = spawn(process.execPath, [CLI, 'encrypt', `oci:${dir}:v1`, `oci:${out}/enc:v1`, '-r', `jwe:${key.publicKeyPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    let running = true;
    void exited.then(() => (running = false));
    // Interrupt once the staging directory shows the copy is under way, however long a loaded machine takes to get there.
    while (running && (await readdir(out)).length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(running, 'the encrypt ended before its staging directory appeared').toBe(true);
    child.kill('SIGINT');
    const code = await exited;
    expect(stderr).toContain('interrupted by SIGINT; nothing was written');
    expect(code).toBe(130);
    expect(await readdir(out)).toEqual([]);
  });

  it('holds a few MiB of a 512 MiB layer at once, encrypting and decrypting', async () => {
    const dir = path.join(work.path, 'big');
    const encrypting = await peakInFlight('encrypt', `oci:${dir}:v1`, `oci:${dir}-enc:v1`, key);
    const decrypting = await peakInFlight('decrypt', `oci:${dir}-enc:v1`, `oci:${dir}-dec:v1`, key);
    console.log(`bytes in flight at most: encrypt ${(encrypting / MiB).toFixed(2)} MiB, decrypt ${(decrypting / MiB).toFixed(2)} MiB`);
    // The stages' high-water marks add up to a few MiB; a stage that buffered the layer would hold all 512.
    expect(encrypting).toBeGreaterThan(0);
    expect(encrypting).toBeLessThan(16 * MiB);
    expect(decrypting).toBeGreaterThan(0);
    expect(decrypting).toBeLessThan(16 * MiB);
  });
});
