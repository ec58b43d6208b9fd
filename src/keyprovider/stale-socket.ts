import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { ImagegateError, systemErrorCode } from '../errors.js';

/** The file path of a gRPC `unix:` address (`unix:///run/x.sock` or `unix:relative.sock`), or undefined. */
export function unixSocketPath(address: string): string | undefined {
  if (!address.startsWith('unix:')) return undefined;
  const rest = address.slice('unix:'.length);
  return rest.startsWith('//') ? rest.slice(2) : rest;
}

/**
 * Removes a socket file left behind by a key provider that died (a node reboot, an OOM kill): binding would fail
 * with EADDRINUSE and a DaemonSet would crash-loop. A socket something still answers on is left alone and refused,
 * so two providers never race for one path; anything that is not a socket is never deleted.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (e) {
    if (systemErrorCode(e) === 'ENOENT') return;
    throw e;
  }
  if (!isSocket) throw new ImagegateError('USAGE', `${path} exists and is not a socket: remove it or choose another --grpc path`);
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new ImagegateError('USAGE', `another process is serving on ${path}: stop it or choose another --grpc path`);
  await unlink(path);
}
