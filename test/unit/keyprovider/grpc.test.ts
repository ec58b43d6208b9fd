import { Client, credentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { decodeBytesMessage, encodeBytesMessage, serveKeyProviderGrpc } from '../../../src/keyprovider/grpc.js';

describe('key-provider gRPC messages', () => {
  it('encode field 1 as bytes and decode it back, skipping unknown fields', () => {
    const payload = Buffer.alloc(300, 7);
    const msg = encodeBytesMessage(payload);
    expect(msg.subarray(0, 3)).toEqual(Buffer.from([0x0a, 0xac, 0x02]));
    expect(decodeBytesMessage(msg)).toEqual(payload);
    expect(decodeBytesMessage(Buffer.concat([Buffer.from([0x10, 0x05]), msg]))).toEqual(payload);
    expect(() => decodeBytesMessage(Buffer.from([0x0a, 0x05, 0x01]))).toThrow(/truncated/);
  });

  it('serves WrapKey and UnWrapKey at the paths ocicrypt calls', async () => {
    const served = await serveKeyProviderGrpc('127.0.0.1:0', async (req) => Buffer.from(`answer to ${req.toString()}`));
    const client = new Client(served.address, credentials.createInsecure());
    try {
      for (const method of ['WrapKey', 'UnWrapKey']) {
        const res = await new Promise<Buffer>((resolve, reject) =>
          client.makeUnaryRequest(`/keyprovider.KeyProviderService/${method}`, encodeBytesMessage, decodeBytesMessage, Buffer.from(`{"op":"${method}"}`), (e, r) => (e ? reject(e) : resolve(r!))),
        );
        expect(res.toString()).toBe(`answer to {"op":"${method}"}`);
      }
    } finally {
      client.close();
      await served.stop();
    }
  });
});
