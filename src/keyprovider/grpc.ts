import type { ServiceDefinition, handleUnaryCall } from '@grpc/grpc-js';
import { ImagegateError, isImagegateError } from '../errors.js';
import { parseKeyProviderListenAddress } from './listen-address.js';
import { bindRestrictedSocket } from './socket-access.js';
import { clearStaleSocket } from './stale-socket.js';

/**
 * ocicrypt's gRPC transport for key providers (utils/keyprovider/keyprovider.proto): service
 * `keyprovider.KeyProviderService` with `WrapKey` and `UnWrapKey` (capital W), each taking and returning a message
 * whose field 1 is the same JSON bytes the command transport uses. The messages are one bytes field, so they are
 * encoded here rather than with a protobuf code generator.
 */
export function encodeBytesMessage(payload: Buffer): Buffer {
  if (payload.length === 0) return Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x0a]), varint(payload.length), payload]);
}

export function decodeBytesMessage(message: Buffer): Buffer {
  let pos = 0;
  let found: Buffer = Buffer.alloc(0);
  while (pos < message.length) {
    const [tag, afterTag] = readVarint(message, pos);
    const field = tag >>> 3;
    const wire = tag & 7;
    pos = afterTag;
    if (wire === 2) {
      const [length, start] = readVarint(message, pos);
      if (start + length > message.length) throw new ImagegateError('BAD_FORMAT', 'key-provider gRPC message is truncated');
      if (field === 1) found = message.subarray(start, start + length);
      pos = start + length;
    } else if (wire === 0) {
      pos = readVarint(message, pos)[1];
    } else {
      throw new ImagegateError('BAD_FORMAT', `key-provider gRPC message has a field of wire type ${wire}`);
    }
  }
  return found;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, at: number): [number, number] {
  let result = 0;
  let shift = 1;
  for (let pos = at; pos < buf.length && pos < at + 5; pos++) {
    const b = buf[pos]!;
    result += (b & 0x7f) * shift;
    if ((b & 0x80) === 0) return [result, pos + 1];
    shift *= 128;
  }
  throw new ImagegateError('BAD_FORMAT', 'key-provider gRPC message has a malformed length');
}

const passthrough = { serialize: (b: Buffer) => encodeBytesMessage(b), deserialize: (b: Buffer) => decodeBytesMessage(b) };

const KEY_PROVIDER_SERVICE: ServiceDefinition = {
  WrapKey: { path: '/keyprovider.KeyProviderService/WrapKey', requestStream: false, responseStream: false, requestSerialize: passthrough.serialize, requestDeserialize: passthrough.deserialize, responseSerialize: passthrough.serialize, responseDeserialize: passthrough.deserialize },
  UnWrapKey: { path: '/keyprovider.KeyProviderService/UnWrapKey', requestStream: false, responseStream: false, requestSerialize: passthrough.serialize, requestDeserialize: passthrough.deserialize, responseSerialize: passthrough.serialize, responseDeserialize: passthrough.deserialize },
};

export interface GrpcServeOptions {
  /** GID that may connect to a Unix socket besides its owner (mode 0660 instead of 0600). */
  socketGroup?: number;
}

/**
 * Serves the key provider over gRPC (plaintext, as ocicrypt dials it before `grpc-tls`), only on a Unix socket or
 * a loopback address (listen-address.ts); a socket is created mode 0600, or 0660 for `socketGroup`. `answer`
 * turns the request JSON into the response JSON. Resolves with the bound address.
 */
export async function serveKeyProviderGrpc(
  address: string,
  answer: (request: Buffer) => Promise<Buffer>,
  options: GrpcServeOptions = {},
): Promise<{ address: string; stop: () => Promise<void> }> {
  const listen = parseKeyProviderListenAddress(address);
  if (listen.kind === 'tcp' && options.socketGroup !== undefined) {
    throw new ImagegateError('USAGE', `--grpc-socket-group applies to a Unix socket, not to ${address}`);
  }
  // Loaded here, not at start-up: gRPC costs several MiB that every other command would pay for nothing.
  const { Server, ServerCredentials, status } = await import('@grpc/grpc-js');
  const server = new Server();
  const handle: handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    answer(call.request).then(
      (res) => callback(null, res),
      (e: unknown) => callback({ code: isImagegateError(e) && e.code === 'AUTH' ? status.PERMISSION_DENIED : status.UNKNOWN, details: e instanceof Error ? e.message : String(e) }),
    );
  };
  server.addService(KEY_PROVIDER_SERVICE, { WrapKey: handle, UnWrapKey: handle });
  const bind = (): Promise<number> => new Promise<number>((resolve, reject) => server.bindAsync(address, ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  let port: number;
  if (listen.kind === 'unix') {
    await clearStaleSocket(listen.path);
    try {
      port = await bindRestrictedSocket(listen.path, options.socketGroup, bind);
    } catch (e) {
      server.forceShutdown();
      throw e;
    }
  } else {
    port = await bind();
  }
  const bound = listen.kind === 'unix' ? address : address.replace(/:\d+$/, `:${port}`);
  return { address: bound, stop: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}
