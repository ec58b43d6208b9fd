import { describe, expect, it } from 'vitest';
import { canonicalBindingName, canonicalDomain, canonicalRepository, canonicalRepositoryName, familiarName, formatImageReference, parseImageReference } from '../../../src/image/reference.js';

describe('image references', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox'],
    ['team/app:v1', 'docker.io/team/app:v1'],
    ['index.docker.io/team/app', 'docker.io/team/app'],
    ['localhost/app', 'localhost/app'],
    ['localhost:5000/a/b/c:tag', 'localhost:5000/a/b/c:tag'],
    ['registry.example.com/a__b/c-d.e:x.y', 'registry.example.com/a__b/c-d.e:x.y'],
    ['Registry/app', 'Registry/app'],
    ['[::1]:5000/app:1', '[::1]:5000/app:1'],
    [`app@sha256:${'a'.repeat(64)}`, `docker.io/library/app@sha256:${'a'.repeat(64)}`],
    [`host:1/app:t@sha256:${'b'.repeat(64)}`, `host:1/app:t@sha256:${'b'.repeat(64)}`],
  ])('normalises %s', (input, expected) => {
    expect(formatImageReference(parseImageReference(input))).toBe(expected);
  });

  it.each([
    ['', /empty/],
    ['UPPER', /repository "library\/UPPER" must be lowercase/],
    ['app:-bad', /tag "-bad"/],
    ['app@sha256:abc', /not a digest/],
    [`app@md5:${'a'.repeat(32)}`, /sha256 or sha512/],
    ['a//b', /repository/],
    [`host/${'a'.repeat(260)}`, /longer than 255/],
  ])('rejects %s', (input, message) => {
    expect(() => parseImageReference(input)).toThrow(message);
  });

  it('writes familiar names as docker save does', () => {
    expect(familiarName(parseImageReference('busybox:latest'))).toBe('busybox:latest');
    expect(familiarName(parseImageReference('team/app:1'))).toBe('team/app:1');
    expect(familiarName(parseImageReference('localhost:5000/app:1'))).toBe('localhost:5000/app:1');
  });
});

describe('canonical names', () => {
  it('folds every spelling of one registry host into one', () => {
    expect(canonicalDomain('LOCALHOST')).toBe('localhost');
    expect(canonicalDomain('Registry.Example:443')).toBe('registry.example');
    expect(canonicalDomain('registry.example:80')).toBe('registry.example');
    expect(canonicalDomain('registry.example:5000')).toBe('registry.example:5000');
    expect(canonicalDomain('127.1')).toBe('127.0.0.1');
    expect(canonicalDomain('127.000.000.001:5000')).toBe('127.0.0.1:5000');
    expect(canonicalDomain('[0:0::1]:5000')).toBe('[::1]:5000');
    expect(canonicalDomain('[::1]:443')).toBe('[::1]');
    for (const hub of ['docker.io', 'index.docker.io', 'Registry-1.Docker.IO', 'registry.hub.docker.com', 'docker.io:443']) expect(canonicalDomain(hub)).toBe('docker.io');
  });

  it('gives an image reference its canonical repository, Docker Hub library/ included', () => {
    expect(canonicalRepository(parseImageReference('nginx:1'))).toBe('docker.io/library/nginx');
    expect(canonicalRepository(parseImageReference('registry-1.docker.io/nginx'))).toBe('docker.io/library/nginx');
    expect(canonicalRepository(parseImageReference('index.docker.io/team/app'))).toBe('docker.io/team/app');
    expect(canonicalRepository(parseImageReference('LOCALHOST/prod/app:1'))).toBe('localhost/prod/app');
    expect(canonicalRepository(parseImageReference('127.0.0.1:443/shop/app@sha256:' + 'a'.repeat(64)))).toBe('127.0.0.1/shop/app');
  });

  it('reads a repository name (a binding) with its first component as the host', () => {
    expect(canonicalRepositoryName('LOCALHOST:443/prod/app')).toBe('localhost/prod/app');
    expect(canonicalRepositoryName('docker.io/nginx')).toBe('docker.io/library/nginx');
    expect(canonicalRepositoryName('myhost/app')).toBe('myhost/app');
    expect(() => canonicalRepositoryName('app')).toThrow(/HOST\[:PORT\]\/PATH/);
    expect(() => canonicalRepositoryName('reg.example/App')).toThrow(/lowercase/);
    expect(canonicalBindingName('not a name')).toBe('not a name');
  });
});
