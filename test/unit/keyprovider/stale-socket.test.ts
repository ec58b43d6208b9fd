import { spawn } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serveKeyProviderGrpc } from '../../../src/keyprovider/grpc.js';
import { clearStaleSocket, unixSocketPath } from '../../../src/keyprovider/stale-socket.js';
import { testTempDir } from '../../support/tools.js';

/** A socket file whose owner was killed: what a node reboot or an OOM kill leaves in the DaemonSet's host dir. */
async function leaveStaleSocket(file: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  expect((await stat(file)).isSocket()).toBe(true);
}

describe('key-provider socket', () => {
  it('reads the path of unix: addresses', () => {
    expect(unixSocketPath('unix:///run/imagegate/keyprovider.sock')).toBe('/run/imagegate/keyprovider.sock');
    expect(unixSocketPath('unix:kp.sock')).toBe('kp.sock');
    expect(unixSocketPath('127.0.0.1:50051')).toBeUndefined();
  });

  it('a socket left by a killed provider is replaced, so a restarted DaemonSet pod can bind', async () => {
    const file = path.join(await testTempDir('stale-sock-'), 'kp.sock');
    await leaveStaleSocket(file);
    const served = await serveKeyProviderGrpc(`unix://${file}`, async (req) => req);
    await served.stop();
  });

  it('a socket another process still serves on is refused, not stolen', async () => {
    const file = path.join(await testTempDir('live-sock-'), 'kp.sock');
    const live = createServer();
    await new Promise<void>((resolve) => live.listen(file, resolve));
    try {
      await expect(clearStaleSocket(file)).rejects.toThrow(/another process is serving on .*kp\.sock/);
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }
  });

  it('a path that is not a socket is never deleted', async () => {
    const file = path.join(await testTempDir('not-sock-'), 'kp.sock');
    await writeFile(file, 'precious');
    await expect(clearStaleSocket(file)).rejects.toThrow(/exists and is not a socket/);
    expect((await stat(file)).isFile()).toBe(true);
  });
});
