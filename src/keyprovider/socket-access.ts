import { chmod, chown, readFile } from 'node:fs/promises';
import { ImagegateError, systemErrorCode } from '../errors.js';

/**
 * Who may connect to the key provider's Unix socket: its owner only (0600), or its owner and one group (0660)
 * when `--grpc-socket-group` names one, for a runtime that runs as another user than the provider.
 */
const SOCKET_MODE = 0o600;
const GROUP_SOCKET_MODE = 0o660;

/** A group name (looked up in /etc/group) or a numeric GID, as `--grpc-socket-group` takes it. */
export async function resolveSocketGroup(text: string, groupFile = '/etc/group'): Promise<number> {
  if (/^\d+$/.test(text)) return Number(text);
  let lines: string[];
  try {
    lines = (await readFile(groupFile, 'utf8')).split('\n');
  } catch (e) {
    throw new ImagegateError('USAGE', `--grpc-socket-group ${text}: cannot read ${groupFile} to look the group up (${systemErrorCode(e) ?? String(e)}); give its numeric GID instead`);
  }
  for (const line of lines) {
    const [name, , gid] = line.split(':');
    if (name === text && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new ImagegateError('USAGE', `--grpc-socket-group ${text}: no such group in ${groupFile}; give an existing group name or a numeric GID`);
}

/**
 * Runs `bind` with a umask that creates the socket file closed to everyone but its owner, so there is no moment in
 * which another user can connect, then sets the final mode (and group). The umask is process-wide: this runs at
 * start-up, before anything else creates files.
 */
export async function bindRestrictedSocket<T>(path: string, group: number | undefined, bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o177);
  let bound: T;
  try {
    bound = await bind();
  } finally {
    process.umask(previous);
  }
  try {
    if (group !== undefined) await chown(path, -1, group);
    await chmod(path, group !== undefined ? GROUP_SOCKET_MODE : SOCKET_MODE);
  } catch (e) {
    const code = systemErrorCode(e);
    throw new ImagegateError(
      'IO',
      `cannot give the key-provider socket ${path} ${group !== undefined ? `group ${group} and mode 0660` : 'mode 0600'} (${code ?? String(e)})` +
        (code === 'EPERM' ? '; to hand the socket to a group, run as root or as a member of that group' : ''),
    );
  }
  return bound;
}
