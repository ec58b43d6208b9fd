import { Client, credentials } from '@grpc/grpc-js';
import { lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeBytesMessage, encodeBytesMessage, serveKeyProviderGrpc } from '../../../src/keyprovider/grpc.js';
import { resolveSocketGroup } from '../../../src/keyprovider/socket-access.js';
import { testTempDir } from '../../support/tools.js';

/** Calls UnWrapKey on `address` and returns the answer's text. */
async function unwrapCall(address: string, body: string): Promise<string> {
  const client = new Client(address, credentials.createInsecure());
  try {
    const res = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/keyprovider.KeyProviderService/UnWrapKey', encodeBytesMessage, decodeBytesMessage, Buffer.from(body), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    return res.toString();
  } finally {
    client.close();
  }
}

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

  it('creates its Unix socket mode 0600 whatever the umask, or 0660 for --grpc-socket-group', async () => {
    const dir = await testTempDir('kp-socket-');
    const previous = process.umask(0);
    try {
      const socket = path.join(dir, 'owner.sock');
      const served = await serveKeyProviderGrpc(`unix://${socket}`, async () => Buffer.from('ok'));
      try {
        expect((await lstat(socket)).mode & 0o777).toBe(0o600);
        expect(await unwrapCall(served.address, '{}')).toBe('ok');
      } finally {
        await served.stop();
      }
      const grouped = path.join(dir, 'group.sock');
      const gid = process.getgid!();
      const withGroup = await serveKeyProviderGrpc(`unix://${grouped}`, async () => Buffer.from('ok'), { socketGroup: gid });
      try {
        const st = await lstat(grouped);
        expect(st.mode & 0o777).toBe(0o660);
        expect(st.gid).toBe(gid);
      } finally {
        await withGroup.stop();
      }
    } finally {
      process.umask(previous);
    }
  });

  it('refuses to listen beyond this machine, before binding anything', async () => {
    for (const address of ['0.0.0.0:0', '[::]:0', '192.0.2.10:0']) {
      await expect(serveKeyProviderGrpc(address, async () => Buffer.alloc(0))).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/is not a loopback address/) });
    }
    await expect(serveKeyProviderGrpc('127.0.0.1:0', async () => Buffer.alloc(0), { socketGroup: 0 })).rejects.toThrow(/--grpc-socket-group applies to a Unix socket/);
  });

  it('looks a socket group up by name in the group file, or takes a GID', async () => {
    const dir = await testTempDir('kp-group-');
    const file = path.join(dir, 'group');
    await writeFile(file, 'root:x:0:\ncontainerd:x:997:alice\n');
    expect(await resolveSocketGroup('containerd', file)).toBe(997);
    expect(await resolveSocketGroup('1234', file)).toBe(1234);
    await expect(resolveSocketGroup('nope', file)).rejects.toThrow(/no such group in .*group; give an existing group name or a numeric GID/);
  });
});

