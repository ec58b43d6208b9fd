import { lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKeyProviderService, serveKeyProviderGrpc } from '../../../src/keyprovider/grpc.js';
import { resolveSocketGroup } from '../../../src/keyprovider/socket-access.js';
import { callKeyProvider, callKeyProviderJson } from '../../support/keyprovider-grpc-client.js';
import { testTempDir } from '../../support/tools.js';

const unwrapCall = (address: string, body: string): Promise<string> => callKeyProviderJson(address, 'UnWrapKey', body);

describe('key-provider gRPC messages', () => {
  it('put the JSON in field 1 as bytes, on the wire as ocicrypt writes it', async () => {
    const service = await loadKeyProviderService();
    const payload = Buffer.alloc(300, 7);
    const message = service['WrapKey']!.requestSerialize({ KeyProviderKeyWrapProtocolInput: payload });
    // Tag 0x0a: field 1, length-delimited; then the length 300 as a varint.
    expect(Buffer.from(message)).toEqual(Buffer.concat([Buffer.from([0x0a, 0xac, 0x02]), payload]));
    expect(service['UnWrapKey']!.responseDeserialize(message)).toEqual({ KeyProviderKeyWrapProtocolOutput: payload });
  });

  it('serves WrapKey and UnWrapKey at the paths ocicrypt calls', async () => {
    const served = await serveKeyProviderGrpc('127.0.0.1:0', async (req) => Buffer.from(`answer to ${req.toString()}`));
    try {
      for (const method of ['WrapKey', 'UnWrapKey'] as const) {
        expect(await callKeyProviderJson(served.address, method, `{"op":"${method}"}`)).toBe(`answer to {"op":"${method}"}`);
      }
    } finally {
      await served.stop();
    }
  });

  it('round-trips WrapKey and UnWrapKey over a Unix socket with a client built from keyprovider.proto', async () => {
    const socket = path.join(await testTempDir('kp-roundtrip-'), 'kp.sock');
    const seen: string[] = [];
    const served = await serveKeyProviderGrpc(`unix://${socket}`, async (req) => {
      seen.push(req.toString());
      if (req.length === 0) return Buffer.alloc(0);
      const request = JSON.parse(req.toString()) as { op: string; keywrapparams?: { optsdata: string }; keyunwrapparams?: { annotation: string } };
      // A toy provider: the wrapped key is the options reversed, so an unwrap must undo exactly what the wrap did.
      if (request.op === 'keywrap') return Buffer.from(JSON.stringify({ keywrapresults: { annotation: [...request.keywrapparams!.optsdata].reverse().join('') } }));
      return Buffer.from(JSON.stringify({ keyunwrapresults: { optsdata: [...request.keyunwrapparams!.annotation].reverse().join('') } }));
    });
    try {
      const wrapped = JSON.parse(await callKeyProviderJson(served.address, 'WrapKey', JSON.stringify({ op: 'keywrap', keywrapparams: { optsdata: 'b3B0cw==' } }))) as { keywrapresults: { annotation: string } };
      expect(wrapped.keywrapresults.annotation).toBe('==wc0B3b');
      const unwrapped = JSON.parse(await callKeyProviderJson(served.address, 'UnWrapKey', JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { annotation: wrapped.keywrapresults.annotation } }))) as { keyunwrapresults: { optsdata: string } };
      expect(unwrapped.keyunwrapresults.optsdata).toBe('b3B0cw==');
      expect(seen).toHaveLength(2);
      // An empty answer is an empty message, and the client reads field 1 as empty bytes.
      expect(await callKeyProviderJson(served.address, 'UnWrapKey', '')).toBe('');
    } finally {
      await served.stop();
    }
  });

  it('reads field 1 of a request that also carries fields it does not know, as protobuf allows', async () => {
    // A client built from a newer contract: the same service and messages with fields ocicrypt might add later.
    const dir = await testTempDir('kp-newer-');
    const newer = path.join(dir, 'keyprovider-newer.proto');
    await writeFile(
      newer,
      [
        'syntax = "proto3";',
        'package keyprovider;',
        'message keyProviderKeyWrapProtocolInput { bytes KeyProviderKeyWrapProtocolInput = 1; string Note = 2; int64 Version = 3; fixed32 Flags = 4; repeated bytes Extra = 15; }',
        'message keyProviderKeyWrapProtocolOutput { bytes KeyProviderKeyWrapProtocolOutput = 1; }',
        'service KeyProviderService { rpc WrapKey(keyProviderKeyWrapProtocolInput) returns (keyProviderKeyWrapProtocolOutput); rpc UnWrapKey(keyProviderKeyWrapProtocolInput) returns (keyProviderKeyWrapProtocolOutput); }',
      ].join('\n'),
    );
    const served = await serveKeyProviderGrpc(`unix://${path.join(dir, 'kp.sock')}`, async (req) => Buffer.from(`answer to ${req.toString()}`));
    try {
      const answer = await callKeyProvider(
        served.address,
        'UnWrapKey',
        { Note: 'from a newer client', KeyProviderKeyWrapProtocolInput: Buffer.from('{"op":"keyunwrap"}'), Version: 7, Flags: 0xffffffff, Extra: [Buffer.from('x')] },
        newer,
      );
      expect((answer['KeyProviderKeyWrapProtocolOutput'] as Buffer).toString()).toBe('answer to {"op":"keyunwrap"}');
    } finally {
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

