import { describe, expect, it } from 'vitest';
import { pinnedName } from '../../../src/admission/admit.js';
import { parseAdmissionReview } from '../../../src/admission/review.js';
import { TtlCache } from '../../../src/admission/ttl-cache.js';
import { podTemplateOf } from '../../../src/pod-model/workload.js';

describe('TtlCache', () => {
  it('shares one look-up among concurrent callers, expires values, remembers failures briefly, and evicts the oldest', async () => {
    let now = 0;
    let loads = 0;
    const cache = new TtlCache<string>({ maxEntries: 2, ttlMs: 100, negativeTtlMs: 10, now: () => now });
    const load = (v: string) => () => {
      loads++;
      return Promise.resolve(v);
    };
    expect(await Promise.all([cache.get('a', load('1')), cache.get('a', load('2'))])).toEqual(['1', '1']);
    expect(loads).toBe(1);
    now = 50;
    expect(await cache.get('a', load('3'))).toBe('1');
    now = 200;
    expect(await cache.get('a', load('4'))).toBe('4');

    const fail = () => Promise.reject(new Error('down'));
    await expect(cache.get('b', fail)).rejects.toThrow('down');
    now = 205;
    await expect(cache.get('b', load('up'))).rejects.toThrow('down');
    now = 220;
    expect(await cache.get('b', load('up'))).toBe('up');

    await cache.get('c', load('c'));
    expect(cache.size).toBe(2);
    expect(cache.hits).toBeGreaterThan(0);
  });
});

describe('podTemplateOf', () => {
  it('finds the pod spec of every admitted kind and lists containers of all three lists', () => {
    const spec = { serviceAccountName: 'web', imagePullSecrets: [{ name: 'pull' }], initContainers: [{ name: 'i', image: 'a' }], containers: [{ name: 'c', image: 'b' }], ephemeralContainers: [{ name: 'e', image: 'c' }] };
    const pod = podTemplateOf('Pod', { spec })!;
    expect(pod.specPath).toBe('/spec');
    expect(pod.containers.map((c) => `${c.list}/${c.index}/${c.name}`)).toEqual(['initContainers/0/i', 'containers/0/c', 'ephemeralContainers/0/e']);
    expect(pod.serviceAccount).toBe('web');
    expect(pod.imagePullSecrets).toEqual(['pull']);
    expect(podTemplateOf('CronJob', { spec: { jobTemplate: { spec: { template: { spec } } } } })!.specPath).toBe('/spec/jobTemplate/spec/template/spec');
    expect(podTemplateOf('Deployment', { spec: { template: { spec: { containers: [] } } } })!.serviceAccount).toBe('default');
    expect(podTemplateOf('ConfigMap', { data: {} })).toBeUndefined();
  });
});

describe('pinnedName', () => {
  const d = `sha256:${'a'.repeat(64)}`;
  it('replaces a tag, keeps the name as written, and leaves a pinned image alone', () => {
    expect(pinnedName('localhost:5000/app:1', d)).toBe(`localhost:5000/app@${d}`);
    expect(pinnedName('busybox', d)).toBe(`busybox@${d}`);
    expect(pinnedName(`app:1@${d}`, d)).toBe(`app:1@${d}`);
  });
});

describe('parseAdmissionReview', () => {
  it('names the missing field', () => {
    expect(() => parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE', kind: { version: 'v1', kind: 'Pod' } } })).toThrow(/\$\.request\.uid must be a string/);
    expect(() => parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' })).toThrow(/admissionReviewVersions/);
  });
});
