import { describe, expect, it } from 'vitest';
import { familiarName, formatImageReference, parseImageReference } from '../../../src/image/reference.js';

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
