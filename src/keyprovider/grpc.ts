import type { ServiceDefinition, handleUnaryCall } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import { ImagegateError, isImagegateError } from '../errors.js';
import { parseKeyProviderListenAddress } from './listen-address.js';
import { bindRestrictedSocket } from './socket-access.js';
import { clearStaleSocket } from './stale-socket.js';

/** keyprovider.proto sits next to this module, in src/ and (copied by `npm run build`) in dist/. */
const KEY_PROVIDER_PROTO = fileURLToPath(new URL('./keyprovider.proto', import.meta.url));

/** Field names exactly as the .proto spells them (ocicrypt's capitals), not camelCased. */
const PROTO_LOADER_OPTIONS = { keepCase: true, defaults: true } as const;

/** A call's request and answer: field 1 holds the same JSON bytes the command transport uses (protocol.ts). */
interface KeyProviderRequest {
  KeyProviderKeyWrapProtocolInput: Buffer;
}
interface KeyProviderResponse {
  KeyProviderKeyWrapProtocolOutput: Buffer;
}

/**
 * ocicrypt's gRPC transport for key providers, as declared in keyprovider.proto: service
 * `keyprovider.KeyProviderService` with `WrapKey` and `UnWrapKey` (capital W): the definition a server adds and a
 * client is built from. The protobuf loader is imported here, not at start-up, for the same reason as gRPC itself.
 */
export async function loadKeyProviderService(): Promise<ServiceDefinition> {
  const { load } = await import('@grpc/proto-loader');
  let definition: Awaited<ReturnType<typeof load>>;
  try {
    definition = await load(KEY_PROVIDER_PROTO, PROTO_LOADER_OPTIONS);
  } catch (e) {
    // Only a build that skipped the copy step (a bare `tsc`) gets here.
    throw new ImagegateError('IO', `cannot load the key provider's gRPC contract ${KEY_PROVIDER_PROTO} (${e instanceof Error ? e.message : String(e)}); npm run build copies it next to grpc.js`, { cause: e });
  }
  return definition['keyprovider.KeyProviderService'] as ServiceDefinition;
}

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
  const service = await loadKeyProviderService();
  const server = new Server();
  const handle: handleUnaryCall<KeyProviderRequest, KeyProviderResponse> = (call, callback) => {
    answer(call.request.KeyProviderKeyWrapProtocolInput).then(
      (res) => callback(null, { KeyProviderKeyWrapProtocolOutput: res }),
      (e: unknown) => callback({ code: isImagegateError(e) && e.code === 'AUTH' ? status.PERMISSION_DENIED : status.UNKNOWN, details: e instanceof Error ? e.message : String(e) }),
    );
  };
  server.addService(service, { WrapKey: handle, UnWrapKey: handle });
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
