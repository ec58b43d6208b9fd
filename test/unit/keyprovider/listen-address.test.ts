import { describe, expect, it } from 'vitest';
import { parseKeyProviderListenAddress } from '../../../src/keyprovider/listen-address.js';

describe('keyprovider --grpc listen address', () => {
  it.each([
    ['unix:///run/imagegate/keyprovider.sock', { kind: 'unix', path: '/run/imagegate/keyprovider.sock' }],
    ['unix:relative.sock', { kind: 'unix', path: 'relative.sock' }],
    ['127.0.0.1:50051', { kind: 'tcp', host: '127.0.0.1', port: 50051 }],
    ['127.8.9.10:0', { kind: 'tcp', host: '127.8.9.10', port: 0 }],
    ['localhost:50051', { kind: 'tcp', host: 'localhost', port: 50051 }],
    ['[::1]:50051', { kind: 'tcp', host: '::1', port: 50051 }],
    ['[0:0:0:0:0:0:0:1]:50051', { kind: 'tcp', host: '0:0:0:0:0:0:0:1', port: 50051 }],
  ])('accepts %s', (text, expected) => {
    expect(parseKeyProviderListenAddress(text)).toMatchObject(expected);
  });

  it.each([
    ['0.0.0.0:50051', /0\.0\.0\.0 is not a loopback address/],
    ['[::]:50051', /:: is not a loopback address/],
    ['192.168.1.20:50051', /192\.168\.1\.20 is not a loopback address/],
    ['10.0.0.1:50051', /is not a loopback address/],
    ['node1.example:50051', /node1\.example is not a loopback address/],
    ['[::ffff:10.0.0.1]:50051', /is not a loopback address/],
    [':50051', /is neither unix:PATH nor HOST:PORT/],
    ['50051', /is neither unix:PATH nor HOST:PORT/],
    ['dns:///0.0.0.0:50051', /is neither unix:PATH nor HOST:PORT/],
    ['127.0.0.1:99999', /port 99999 is out of range/],
    ['unix:', /names no socket path/],
  ])('refuses %s, saying what it listens on instead', (text, reason) => {
    let error: unknown;
    try {
      parseKeyProviderListenAddress(text);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'USAGE' });
    expect((error as Error).message).toMatch(reason);
    expect((error as Error).message).toContain('listens only on a Unix socket (unix:///run/imagegate/keyprovider.sock) or a loopback address');
  });
});
