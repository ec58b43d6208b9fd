/**
 * The OpenBao test infrastructure itself (test/support/openbao.ts): a real `bao server -dev` built from OpenBao's Go
 * module by test/infra/build-openbao.sh, with transit and the approle, jwt and kubernetes auth methods enabled.
 */
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOpenBao, startOpenBao, type OpenBaoServer } from '../support/openbao.js';

const bin = findOpenBao();

describe.skipIf(!bin)('OpenBao dev server', () => {
  let bao: OpenBaoServer | undefined;
  beforeAll(async () => {
    bao = await startOpenBao();
  });
  afterAll(async () => {
    await bao?.stop();
  });

  it('listens on a loopback port and reports itself healthy', async () => {
    expect(bao!.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(path.isAbsolute(bao!.bin)).toBe(true);
    expect(bao!.bin).toBe(bin);
    const health = await bao!.api('GET', 'sys/health');
    expect(health, bao!.log()).toMatchObject({ initialized: true, sealed: false });
  });

  it('wraps and unwraps with a derived transit key, bound to its context', async () => {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await bao!.api('POST', 'transit/keys/smoke', { derived: true });
    const plaintext = b64('a layer key, 32 bytes of secret!');
    const context = b64('imagegate:smoke');

    const enc = await bao!.api('POST', 'transit/encrypt/smoke', { plaintext, context });
    const ciphertext: string = enc.data.ciphertext;
    expect(ciphertext).toMatch(/^vault:v1:/);

    const dec = await bao!.api('POST', 'transit/decrypt/smoke', { ciphertext, context });
    expect(dec.data.plaintext).toBe(plaintext);

    // A different context derives a different key, so decryption fails; api() throws with the server's answer.
    await expect(
      bao!.api('POST', 'transit/decrypt/smoke', { ciphertext, context: b64('imagegate:other') }),
    ).rejects.toThrow(/answered 400/);
  });

  it('has approle, jwt and kubernetes auth mounted', async () => {
    const auth = await bao!.api('GET', 'sys/auth');
    expect(auth.data['approle/']?.type).toBe('approle');
    expect(auth.data['jwt/']?.type).toBe('jwt');
    expect(auth.data['kubernetes/']?.type).toBe('kubernetes');
  });

  it('rejects calls without the root token', async () => {
    const res = await request(`${bao!.address}/v1/sys/auth`);
    expect(res.statusCode).toBe(403);
    await res.body.dump();
  });

  it('stops: the process exits and the port is closed', async () => {
    const server = bao!;
    await server.stop();
    await expect(request(`${server.address}/v1/sys/health`)).rejects.toThrow();
    await server.stop(); // a second stop is harmless
  });
});
