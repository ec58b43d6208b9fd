/**
 * A gRPC client of the key provider built the way any Node program would build one from ocicrypt's contract:
 * @grpc/proto-loader reads a keyprovider.proto, grpc-js makes the client. It does not use src/keyprovider/grpc.ts,
 * so a test that talks through it checks the server against the .proto, not against itself.
 */
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** Our copy of ocicrypt's contract, the one the server loads. */
const KEY_PROVIDER_PROTO = fileURLToPath(new URL('../../src/keyprovider/keyprovider.proto', import.meta.url));

/**
 * Calls `method` (`WrapKey` or `UnWrapKey`) of `keyprovider.KeyProviderService` at `address` (host:port or
 * unix:///path) with `request`, a message of `protoFile` by its field names as written there; resolves with the
 * answer message (fields the server left out at their defaults, as protobuf reads them).
 */
export async function callKeyProvider(address: string, method: 'WrapKey' | 'UnWrapKey', request: object, protoFile = KEY_PROVIDER_PROTO): Promise<Record<string, unknown>> {
  const definition = await load(protoFile, { keepCase: true, defaults: true });
  const { KeyProviderService } = loadPackageDefinition(definition)['keyprovider'] as { KeyProviderService: ServiceClientConstructor };
  const client = new KeyProviderService(address, credentials.createInsecure());
  try {
    return await new Promise<Record<string, unknown>>((resolve, reject) =>
      client[method]!(request, (e: Error | null, answer: Record<string, unknown>) => (e ? reject(e) : resolve(answer))),
    );
  } finally {
    client.close();
  }
}

/** Calls `method` with `json` as the request's field 1 and returns the answer's field 1 as text. */
export async function callKeyProviderJson(address: string, method: 'WrapKey' | 'UnWrapKey', json: string | Buffer): Promise<string> {
  const answer = await callKeyProvider(address, method, { KeyProviderKeyWrapProtocolInput: Buffer.from(json) });
  return (answer['KeyProviderKeyWrapProtocolOutput'] as Buffer).toString();
}
