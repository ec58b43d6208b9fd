import { describe, expect, it } from 'vitest';
import { containerDifferences, sameJson, sameQuantity, sameVolume } from '../../../src/pod-model/container-equality.js';
import { serviceAccountVolume } from '../../support/api-server-pod.js';

const SA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const saVolume = serviceAccountVolume('kube-api-access-b2c4d');
const expected = {
  name: 'check',
  image: 'reg.example/i@sha256:' + 'c'.repeat(64),
  env: [{ name: 'NODE_OPTIONS', value: '' }, { name: 'A', value: 'b' }],
  volumeMounts: [{ name: 'token', mountPath: '/t', readOnly: true }],
  resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } },
};
const saMount = { name: 'kube-api-access-b2c4d', readOnly: true, mountPath: SA_PATH };

describe('containerDifferences', () => {
  it('ignores key order, the defaults the API server fills in, and an empty env value Go leaves out', () => {
    const stored = {
      resources: { limits: { memory: '256Mi' }, requests: { memory: '64Mi', cpu: '10m' } },
      volumeMounts: [{ readOnly: true, mountPath: '/t', name: 'token' }, saMount],
      env: [{ name: 'NODE_OPTIONS' }, { value: 'b', name: 'A' }],
      terminationMessagePolicy: 'File',
      imagePullPolicy: 'IfNotPresent',
      terminationMessagePath: '/dev/termination-log',
      image: expected.image,
      name: 'check',
    };
    expect(containerDifferences(stored, expected, [saVolume])).toEqual([]);
  });

  it('lists every field that differs, including fields only the stored side has', () => {
    const stored = { ...expected, command: ['sh'], restartPolicy: 'Always', env: [...expected.env, { name: 'NODE_OPTIONS', value: '--require=/x' }] };
    expect(containerDifferences(stored, expected, [])).toEqual(['command', 'env', 'restartPolicy']);
  });

  it('takes the service-account mount only in the exact shape the plugin writes, over its kind of volume', () => {
    const withMount = (mount: object, volumes: Array<Record<string, unknown>> = [saVolume]): string[] => containerDifferences({ ...expected, volumeMounts: [...expected.volumeMounts, mount] }, expected, volumes);
    expect(withMount(saMount)).toEqual([]);
    expect(withMount({ ...saMount, readOnly: false }), 'writable').toEqual(['volumeMounts']);
    expect(withMount({ ...saMount, subPath: 'token' }), 'a sub-path').toEqual(['volumeMounts']);
    expect(withMount({ ...saMount, name: 'data' }, [{ ...saVolume, name: 'data' }]), 'another volume name').toEqual(['volumeMounts']);
    expect(withMount(saMount, [{ name: saVolume.name, hostPath: { path: '/' } }]), 'a host path under the name').toEqual(['volumeMounts']);
    expect(withMount(saMount, [{ name: saVolume.name, projected: { sources: [{ secret: { name: 'vault-token' } }] } }]), 'a secret under the name').toEqual(['volumeMounts']);
    expect(withMount(saMount, []), 'no such volume').toEqual(['volumeMounts']);
    const twice = { ...expected, volumeMounts: [...expected.volumeMounts, saMount, saMount] };
    expect(containerDifferences(twice, expected, [saVolume])).toEqual(['volumeMounts']);
  });

  it('accepts LimitRange additions and AlwaysPullImages, never a changed or missing resource', () => {
    const limitRanged = { ...expected, resources: { requests: { cpu: '10m', memory: '64Mi', 'ephemeral-storage': '1Gi' }, limits: { memory: '256Mi', cpu: '1' } } };
    expect(containerDifferences(limitRanged, expected, [])).toEqual([]);
    expect(containerDifferences({ ...expected, imagePullPolicy: 'Always' }, expected, [])).toEqual([]);
    expect(containerDifferences({ ...expected, imagePullPolicy: 'Never' }, expected, [])).toEqual(['imagePullPolicy']);
    expect(containerDifferences({ ...expected, resources: { requests: { cpu: '10m', memory: '64Mi' } } }, expected, [])).toEqual(['resources']);
    expect(containerDifferences({ ...expected, resources: { ...expected.resources, claims: [{ name: 'gpu' }] } }, expected, [])).toEqual(['resources']);
  });
});

describe('sameQuantity', () => {
  it('compares by value, rounded up to milli-units as the API server stores them', () => {
    for (const [a, b] of [
      ['64Mi', '67108864'],
      ['0.25Gi', '256Mi'],
      ['1.5Gi', '1536Mi'],
      ['10m', '0.01'],
      ['1', '1000m'],
      ['1e3', '1k'],
      ['1E3', '1000'],
      ['0.5m', '1m'],
      ['500000u', '500m'],
    ]) {
      expect(sameQuantity(a, b), `${a} = ${b}`).toBe(true);
    }
    for (const [a, b] of [
      ['64Mi', '64M'],
      ['1', '1001m'],
      ['1Ki', 'x'],
      ['', '0'],
      [undefined, '0'],
    ]) {
      expect(sameQuantity(a, b), `${String(a)} ≠ ${b}`).toBe(false);
    }
  });
});

describe('sameVolume and sameJson', () => {
  it('fill in the projected volume defaults, and ignore key order only', () => {
    const injected = { name: 'imagegate-token', projected: { sources: [{ serviceAccountToken: { audience: 'vault', path: 'token' } }] } };
    const stored = { projected: { defaultMode: 420, sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600, audience: 'vault' } }] }, name: 'imagegate-token' };
    expect(sameVolume(stored, injected)).toBe(true);
    expect(sameVolume({ ...stored, projected: { ...stored.projected, defaultMode: 511 } }, injected)).toBe(false);
    expect(sameVolume(undefined, injected)).toBe(false);
    expect(sameJson({ a: [1, { b: 2, c: 3 }] }, { a: [1, { c: 3, b: 2 }] })).toBe(true);
    expect(sameJson([1, 2], [2, 1])).toBe(false);
    expect(sameJson({ a: null }, {})).toBe(false);
  });
});
