import { isIP } from 'node:net';
import { ImagegateError } from '../errors.js';
import { unixSocketPath } from './stale-socket.js';

const LISTENS_ONLY_TAIL = 'listens only on a Unix socket (unix:///run/imagegate/keyprovider.sock) or a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT)';
const LISTENS_ONLY = `unwraps with the node's Vault identity for anyone who can connect, so it ${LISTENS_ONLY_TAIL}`;

/** Where `keyprovider --grpc` may listen: a Unix socket, or a loopback address. */
export type KeyProviderListenAddress = { kind: 'unix'; path: string; address: string } | { kind: 'tcp'; host: string; port: number; address: string };

/**
 * Checks a `--grpc` address before anything is bound. The key provider answers unwrap requests with the node's
 * Vault identity, in plaintext gRPC and without asking who calls (that is how ocicrypt dials it), so anyone who can
 * reach it can decrypt every image the node can. Only a Unix socket (whose file mode decides who may connect) or
 * a loopback address keeps it on this machine: `0.0.0.0`, `::`, a LAN address or a host name are refused.
 */
export function parseKeyProviderListenAddress(text: string): KeyProviderListenAddress {
  const where = `--grpc ${JSON.stringify(text)}`;
  const refuse = (why: string): ImagegateError => new ImagegateError('USAGE', `${where}: ${why}; the key provider ${LISTENS_ONLY}`);
  const socket = unixSocketPath(text);
  if (socket !== undefined) {
    if (socket === '') throw refuse('names no socket path');
    return { kind: 'unix', path: socket, address: text };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) throw refuse('is neither unix:PATH nor HOST:PORT');
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw refuse(`port ${port} is out of range`);
  if (!isLoopback(host)) throw new ImagegateError('USAGE', `${where}: ${host} is not a loopback address; the key provider unwraps with the node's Vault identity for anyone who can connect, so it ${LISTENS_ONLY_TAIL}`);
  return { kind: 'tcp', host, port, address: text };
}

function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  switch (isIP(host)) {
    case 4:
      return host.split('.')[0] === '127';
    case 6:
      return host === '::1' || /^(?:0{1,4}:){7}0{0,3}1$/.test(host) || /^::ffff:127\./i.test(host);
    default:
      return false;
  }
}
