/**
 * The mutating hook's JSON Patch (src/pod-model/pod-mutation.ts): made by editing a copy of the object and diffing it
 * with fast-json-patch's `compare`. What the API server receives must apply to the object it sent, whether or not the
 * lists the mutation adds to exist, and wherever the pod spec sits (a Pod, a Deployment's template).
 */
import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../../src/image/validate.js';
import { keyAccessCheckContainer, tokenVolume, type CheckContainerSettings } from '../../../src/pod-model/injected-containers.js';
import { patchFromMutation, type JsonPatch } from '../../../src/pod-model/json-patch.js';
import { podPatch, type PodMutation } from '../../../src/pod-model/pod-mutation.js';

type Json = Record<string, any>;

const settings: CheckContainerSettings = { image: `reg.example/imagegate@sha256:${'c'.repeat(64)}`, vaultAddress: 'https://vault.example:8200', authMethod: 'jwt', vaultRole: 'workloads', audience: 'vault' };
const APP = 'reg.example/prod/app:1';
const PINNED_APP = `reg.example/prod/app@sha256:${'d'.repeat(64)}`;
const check = { container: keyAccessCheckContainer(settings, [PINNED_APP]), volume: tokenVolume(settings) };

/** The patch applied to the original as the API server applies it: every operation validated against the document. */
function applied(original: JsonObject, patch: JsonPatch): Json {
  return jsonPatch.applyPatch(structuredClone(original), patch, true, false).newDocument;
}

const bare = (): Json => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'web', image: APP }] } });

const furnished = (): Json => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', annotations: { 'example.com/owner': 'shop', 'sidecar.istio.io/inject': 'true' } },
  spec: {
    initContainers: [{ name: 'migrate', image: 'reg.example/prod/migrate:1', args: ['up'] }, { name: 'warm', image: 'reg.example/tools:1' }],
    containers: [{ name: 'web', image: APP, env: [{ name: 'MODE', value: 'prod' }] }],
    volumes: [{ name: 'data', emptyDir: {} }],
  },
});

const deployment = (spec: Json): Json => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', annotations: { a: 'b' } }, spec: { replicas: 2, template: { metadata: { labels: { app: 'web' } }, spec } } });

describe('patchFromMutation', () => {
  it('gives a patch that turns the original into the mutated copy, lists inserted at the front included, and leaves the original alone', () => {
    const original: Json = { spec: { list: [{ n: 1, x: 'a' }, { n: 2 }], keep: { '~odd/key': 1 } }, metadata: { annotations: { 'a/b': 'c' } } };
    const before = structuredClone(original);
    const mutate = (o: Json): void => {
      o.spec.list.unshift({ n: 0, y: [1, 2] });
      (o.spec.added ??= []).push('new');
      o.metadata.annotations['a/b'] = 'd';
      delete o.spec.keep['~odd/key'];
    };
    const patch = patchFromMutation(original, mutate);
    const copy = structuredClone(original);
    mutate(copy);
    expect(applied(original, patch)).toEqual(copy);
    expect(original).toEqual(before);
  });

  it('gives an empty patch when nothing changes', () => {
    expect(patchFromMutation(furnished(), () => {})).toEqual([]);
  });
});

describe('podPatch, the key-access check (node model)', () => {
  const mutation: PodMutation = { images: [{ list: 'containers', index: 0, image: PINNED_APP }], check };

  it('on a pod without initContainers, volumes or annotations: adds each list whole', () => {
    const pod = bare();
    const patch = podPatch('Pod', pod, mutation);
    const want = bare();
    want.spec.containers[0].image = PINNED_APP;
    want.spec.initContainers = [check.container];
    want.spec.volumes = [check.volume];
    expect(applied(pod, patch)).toEqual(want);
    // One `add` per new list: what the webhook's readers (and kubectl's audit log) see.
    expect(patch.filter((op) => op.op === 'add').map((op) => op.path).sort()).toEqual(['/spec/initContainers', '/spec/volumes']);
  });

  it('on a pod with initContainers, volumes and annotations: the check goes first, the token volume last, annotations untouched', () => {
    const pod = furnished();
    const want = furnished();
    want.spec.containers[0].image = PINNED_APP;
    want.spec.initContainers.unshift(check.container);
    want.spec.volumes.push(check.volume);
    expect(applied(pod, podPatch('Pod', pod, mutation))).toEqual(want);
  });

  it("replaces a check the pod brought and an altered token volume with imagegate's own", () => {
    const pod = furnished();
    const forged = { ...check.container, args: ['init', '--check'] };
    pod.spec.initContainers.push({ name: 'imagegate-check', image: 'evil.example/ok:1' });
    pod.spec.containers.push({ ...forged, name: 'imagegate-sidecar' });
    pod.spec.volumes.unshift({ ...check.volume, projected: { sources: [] } });
    const want = furnished();
    want.spec.containers[0].image = PINNED_APP;
    want.spec.initContainers.unshift(check.container);
    want.spec.volumes.unshift(check.volume);
    expect(applied(pod, podPatch('Pod', pod, mutation))).toEqual(want);
  });

  it('changes nothing where the check is already in place and the images pinned', () => {
    const pod = furnished();
    pod.spec.containers[0].image = PINNED_APP;
    pod.spec.initContainers.unshift(check.container);
    pod.spec.volumes.push(check.volume);
    expect(podPatch('Pod', pod, mutation)).toEqual([]);
  });

  it("patches a Deployment's pod template where it lies, with and without the lists", () => {
    for (const spec of [bare().spec, furnished().spec]) {
      const object = deployment(structuredClone(spec));
      const patch = podPatch('Deployment', object, mutation);
      expect(patch.every((op) => op.path.startsWith('/spec/template/spec/'))).toBe(true);
      const want = deployment(structuredClone(spec));
      const template = want.spec.template.spec;
      template.containers[0].image = PINNED_APP;
      template.initContainers = [check.container, ...(template.initContainers ?? [])];
      template.volumes = [...(template.volumes ?? []), check.volume];
      expect(applied(object, patch)).toEqual(want);
    }
  });
});

describe('podPatch, the pod model', () => {
  const facts = {
    base: `reg.example/public/base@sha256:${'b'.repeat(64)}`,
    paths: ['app', 'etc/app'],
    config: { entrypoint: ['/bin/sh'], cmd: ['/app/run.sh'], env: ['MODE=dev', 'PATH=/app/bin:/usr/bin'], workingDir: '/app', user: '1000:1000' },
  };
  const encrypted = `reg.example/prod/app@sha256:${'d'.repeat(64)}`;
  const mutation: PodMutation = { images: [], plainBase: { containers: [{ index: 0, name: 'web', image: encrypted, facts }], settings } };
  const unpack = (): Json => {
    const init = applied(bare(), podPatch('Pod', bare(), mutation)).spec.initContainers[0];
    expect(init.name).toBe('imagegate-unpack-web');
    return init;
  };

  it('on a bare pod: runs the base with a volume per path, the image config copied, the unpack container and the token volume added', () => {
    const pod = bare();
    const want = bare();
    Object.assign(want.spec.containers[0], {
      image: facts.base,
      volumeMounts: [{ name: 'imagegate-0-0', mountPath: '/app' }, { name: 'imagegate-0-1', mountPath: '/etc/app' }],
      command: ['/bin/sh'],
      args: ['/app/run.sh'],
      env: [{ name: 'MODE', value: 'dev' }, { name: 'PATH', value: '/app/bin:/usr/bin' }],
      workingDir: '/app',
      securityContext: { runAsUser: 1000 },
    });
    want.spec.initContainers = [unpack()];
    want.spec.volumes = [{ name: 'imagegate-0-0', emptyDir: {} }, { name: 'imagegate-0-1', emptyDir: {} }, tokenVolume(settings)];
    expect(applied(pod, podPatch('Pod', pod, mutation))).toEqual(want);
  });

  it("on a furnished pod: keeps what the pod sets (its env wins, its command, its securityContext's user), and appends to its lists", () => {
    const pod = furnished();
    Object.assign(pod.spec.containers[0], { command: ['/app/serve'], securityContext: { runAsUser: 7, readOnlyRootFilesystem: true }, volumeMounts: [{ name: 'data', mountPath: '/data' }] });
    const want = structuredClone(pod);
    const web = want.spec.containers[0];
    web.image = facts.base;
    web.volumeMounts.push({ name: 'imagegate-0-0', mountPath: '/app' }, { name: 'imagegate-0-1', mountPath: '/etc/app' });
    web.env.push({ name: 'PATH', value: '/app/bin:/usr/bin' });
    web.workingDir = '/app';
    want.spec.initContainers.unshift(unpack());
    want.spec.volumes.push({ name: 'imagegate-0-0', emptyDir: {} }, { name: 'imagegate-0-1', emptyDir: {} }, tokenVolume(settings));
    expect(applied(pod, podPatch('Pod', pod, mutation))).toEqual(want);
  });
});
