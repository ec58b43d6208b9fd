/**
 * The node model's injected check (imagegate issue 12 item 2, issue 13's first defect): it survives what a real API
 * server does to it, and a pod cannot neutralise it — not by bringing its own, not by altering the injected one in
 * any field that changes what runs or when, not by having another init container run first.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { admit, type AdmissionDeps } from '../../../src/admission/admit.js';
import { checkIsIntact } from '../../../src/pod-model/check-integrity.js';
import { CHECK_COMMAND, keyAccessCheckContainer, tokenVolume, type CheckContainerSettings } from '../../../src/pod-model/injected-containers.js';
import type { ResolvedImage } from '../../../src/admission/image-facts.js';
import type { AdmissionRequest } from '../../../src/admission/review.js';
import { protectingPolicy } from '../../support/admission-policy.js';
import { applyJsonPatch, storedByApiServer, throughApiServer } from '../../support/api-server-pod.js';

type Json = Record<string, any>;

const digest = `sha256:${'d'.repeat(64)}`;
const CHECK_IMAGE = `reg.example/imagegate@sha256:${'c'.repeat(64)}`;
const APP = 'reg.example/prod/app:1';
const PINNED_APP = `reg.example/prod/app@${digest}`;
const MESH_IMAGE = 'docker.io/istio/proxyv2:1.22.0';

const policy = protectingPolicy('reg.example/prod/**');

async function resolve(image: string): Promise<ResolvedImage> {
  const repository = image.replace(/[@:][^/]*$/, '');
  const encryptedLayers = repository === 'reg.example/prod/app' ? 2 : 0;
  return { repository, digest, platforms: [{ layers: 2, encryptedLayers, schemes: encryptedLayers > 0 ? ['jwe'] : [], offlineSchemes: encryptedLayers > 0 ? ['jwe'] : [], serviceKeys: [], layersWithoutServiceKey: encryptedLayers }] };
}

const check: CheckContainerSettings = { image: CHECK_IMAGE, vaultAddress: 'https://vault.example:8200', authMethod: 'jwt', vaultRole: 'workloads', audience: 'vault' };
const deps: AdmissionDeps = { policy: () => policy, resolve, budgetMs: 1000, check };
const expectedCheck = (): Json => keyAccessCheckContainer(check, [PINNED_APP]);

function review(pod: Json): AdmissionRequest {
  return { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE', object: pod, dryRun: false };
}

/** The pod after imagegate's mutating hook, with its patch applied as the API server would. */
async function mutated(pod: Json): Promise<Json> {
  const out = await admit(review(pod), deps, true);
  expect(out.response.allowed, out.response.status?.message).toBe(true);
  const patch = out.response.patch === undefined ? [] : JSON.parse(Buffer.from(out.response.patch, 'base64').toString());
  return applyJsonPatch(pod, patch);
}

async function validated(pod: Json): Promise<{ allowed: boolean; message: string | undefined }> {
  const out = await admit(review(pod), deps, false);
  return { allowed: out.response.allowed, message: out.response.status?.message };
}

const userPod = (spec: Json = {}): Json => ({
  metadata: { name: 'web', namespace: 'shop' },
  spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: APP }], ...spec },
});

/** The user's pod created through the API server (imagegate's hook called, and re-invoked), as the validating hook gets it. */
async function admittedPod(spec: Json = {}): Promise<Json> {
  return throughApiServer(userPod(spec), mutated);
}

/** The stored pod (or the patched one, as the webhook wrote it) with the first init container changed by `edit`. */
async function withCheck(edit: (c: Json) => void, stored = true): Promise<Json> {
  const pod = stored ? await admittedPod() : await mutated(userPod());
  edit(pod.spec.initContainers[0]);
  return pod;
}

describe('the injected check as a real API server returns it', () => {
  it('is admitted: keys reordered, defaults filled, defaultMode 420, the kube-api-access mount and volume added', async () => {
    const pod = await admittedPod();
    const stored = pod.spec.initContainers[0];
    // The fixture does what the cluster run saw: otherwise this test would prove nothing.
    expect(Object.keys(stored)).not.toEqual(Object.keys(expectedCheck()));
    expect(stored.volumeMounts).toContainEqual({ name: 'kube-api-access-x7k2q', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' });
    expect(pod.spec.volumes.find((v: Json) => v.name === 'imagegate-token').projected.defaultMode).toBe(420);
    expect(stored.env.find((e: Json) => e.name === 'NODE_OPTIONS')).toEqual({ name: 'NODE_OPTIONS' });

    expect(await validated(pod)).toEqual({ allowed: true, message: undefined });
  });

  it('is admitted without the token mount too (automountServiceAccountToken: false)', async () => {
    const pod = await admittedPod({ automountServiceAccountToken: false });
    expect(pod.spec.volumes.map((v: Json) => v.name)).toEqual(['imagegate-token']);
    expect((await validated(pod)).allowed).toBe(true);
  });

  it('is left alone by the mutating hook when it is already in place (a re-invocation with nothing moved)', async () => {
    const out = await admit(review(await admittedPod()), deps, true);
    expect(out.response.patch).toBeUndefined();
  });

  it('tolerates what other admission plugins add: LimitRange defaults, AlwaysPullImages', async () => {
    const pod = await withCheck((c) => {
      c.resources.limits.cpu = '500m';
      c.resources.limits['ephemeral-storage'] = '1Gi';
      c.imagePullPolicy = 'Always';
    });
    expect((await validated(pod)).allowed).toBe(true);
  });

  it('compares resource quantities by value, not by spelling', async () => {
    const pod = await withCheck((c) => {
      c.resources = { limits: { memory: '0.25Gi' }, requests: { cpu: '0.01', memory: '67108864' } };
    });
    expect((await validated(pod)).allowed).toBe(true);
    const smaller = await withCheck((c) => (c.resources.limits.memory = '1Mi'));
    expect((await validated(smaller)).message).toMatch(/altered \(resources\)/);

    // Injected in another spelling, stored in the canonical one: still the same container.
    const spelled = { ...expectedCheck(), resources: { limits: { memory: '0.25Gi' }, requests: { cpu: '0.01', memory: '0.0625Gi' } } };
    const stored = storedByApiServer({ spec: { initContainers: [spelled], containers: [{ name: 'web', image: PINNED_APP }], volumes: [tokenVolume(check)] } });
    expect(stored.spec.initContainers[0].resources).toEqual({ limits: { memory: '256Mi' }, requests: { cpu: '10m', memory: '64Mi' } });
    expect(checkIsIntact(stored.spec, spelled, tokenVolume(check))).toBeUndefined();
  });
});

describe('a pod cannot neutralise the check (validating hook)', () => {
  const attacks: Array<[string, (c: Json) => void, RegExp]> = [
    ['a command override (node -e process.exit(0))', (c) => (c.command = ['node', '-e', 'process.exit(0)']), /altered \(command\)/],
    ['no command at all (the image entrypoint)', (c) => delete c.command, /altered \(command\)/],
    ['restartPolicy: Always (a native sidecar: the app starts without waiting)', (c) => (c.restartPolicy = 'Always'), /altered \(restartPolicy\)/],
    ['env NODE_OPTIONS=--import=data:…exit(0)', (c) => c.env.push({ name: 'NODE_OPTIONS', value: '--import=data:text/javascript,process.exit(0)' }), /altered \(env\)/],
    ['envFrom supplying NODE_OPTIONS', (c) => (c.envFrom = [{ configMapRef: { name: 'node-options' } }]), /altered \(envFrom\)/],
    ['a lifecycle hook', (c) => (c.lifecycle = { postStart: { exec: { command: ['kill', '1'] } } }), /altered \(lifecycle\)/],
    ['a startup probe', (c) => (c.startupProbe = { exec: { command: ['true'] } }), /altered \(startupProbe\)/],
    ['a working directory', (c) => (c.workingDir = '/tmp'), /altered \(workingDir\)/],
    ['stdin and tty', (c) => Object.assign(c, { stdin: true, tty: true }), /altered \(stdin, tty\)/],
    ['a weaker security context', (c) => (c.securityContext.readOnlyRootFilesystem = false), /altered \(securityContext\)/],
    ['an extra volume mount', (c) => c.volumeMounts.push({ name: 'data', mountPath: '/opt/imagegate/dist' }), /altered \(volumeMounts\)/],
    ['a field Kubernetes may add later', (c) => (c.restartPolicyRules = [{ action: 'Restart', exitCodes: { operator: 'In', values: [1] } }]), /altered \(restartPolicyRules\)/],
    ['another image', (c) => (c.image = 'reg.example/imagegate:latest'), /altered \(image\)/],
    ['args', (c) => (c.args = ['init', '--check']), /altered \(args\)/],
  ];
  for (const [what, edit, message] of attacks) {
    for (const stored of [true, false]) {
      it(`refuses ${what}, in the pod ${stored ? 'as the API server stores it' : 'as the mutating hook patched it'}`, async () => {
        const result = await validated(await withCheck(edit, stored));
        expect(result.allowed).toBe(false);
        expect(result.message).toMatch(message);
        expect(result.message).toMatch(/pods running protected images must keep it as the webhook injected it/);
      });
    }
  }

  it('refuses a forged service-account volume mounted into the check under the kube-api-access name', async () => {
    const pod = await admittedPod();
    const sa = pod.spec.volumes.find((v: Json) => v.name.startsWith('kube-api-access-'));
    delete sa.projected;
    sa.hostPath = { path: '/', type: '' };
    expect((await validated(pod)).message).toMatch(/altered \(volumeMounts\)/);
  });

  it('refuses an altered token volume', async () => {
    const pod = await admittedPod();
    pod.spec.volumes.find((v: Json) => v.name === 'imagegate-token').projected.sources[0].serviceAccountToken.audience = 'other';
    expect((await validated(pod)).message).toMatch(/the imagegate-token volume was altered/);
  });

  it('says which container was placed before the check, and so which webhook', async () => {
    const pod = await admittedPod();
    pod.spec.initContainers.unshift({ name: 'istio-init', image: MESH_IMAGE, terminationMessagePath: '/dev/termination-log', resources: {} });
    const result = await validated(pod);
    expect(result.allowed).toBe(false);
    expect(result.message).toMatch(/imagegate-check init container is not first: init container istio-init \(image docker\.io\/istio\/proxyv2:1\.22\.0\) was placed before it/);
  });

  it('refuses another container under a reserved name running imagegate\'s image', async () => {
    const pod = await admittedPod();
    pod.spec.containers.push({ name: 'imagegate-helper', image: CHECK_IMAGE, command: ['sh'] });
    expect((await validated(pod)).message).toMatch(/container imagegate-helper runs imagegate's image under a name reserved/);
  });
});

describe('a pod cannot bring its own check (mutating hook)', () => {
  const ownChecks: Array<[string, Json]> = [
    ['a command override', { name: 'imagegate-check', image: CHECK_IMAGE, command: ['node', '-e', 'process.exit(0)'] }],
    ['restartPolicy: Always', { ...keyAccessCheckContainer(check, [PINNED_APP]), restartPolicy: 'Always' }],
    ['env NODE_OPTIONS', { ...keyAccessCheckContainer(check, [PINNED_APP]), env: [...(keyAccessCheckContainer(check, [PINNED_APP]).env as Json[]), { name: 'NODE_OPTIONS', value: '--import=data:text/javascript,process.exit(0)' }] }],
    ['envFrom', { ...keyAccessCheckContainer(check, [PINNED_APP]), envFrom: [{ configMapRef: { name: 'node-options' } }] }],
    ['a lifecycle hook', { ...keyAccessCheckContainer(check, [PINNED_APP]), lifecycle: { preStop: { exec: { command: ['true'] } } } }],
    ['another image under the reserved name', { name: 'imagegate-check', image: 'reg.example/tools/busybox:1', command: ['true'] }],
  ];
  for (const [what, own] of ownChecks) {
    it(`replaces a pod's own imagegate-check (${what}) with the injected one, first`, async () => {
      const pod = userPod({ initContainers: [{ name: 'migrate', image: APP }, own] });
      const after = await mutated(pod);
      expect(after.spec.initContainers.map((c: Json) => c.name)).toEqual(['imagegate-check', 'migrate']);
      expect(after.spec.initContainers[0]).toEqual(expectedCheck());
      expect((await validated(storedByApiServer(after))).allowed).toBe(true);
    });
  }

  it('removes imagegate-named containers running imagegate\'s image that it did not inject', async () => {
    const pod = userPod({ containers: [{ name: 'web', image: APP }, { name: 'imagegate-helper', image: CHECK_IMAGE, command: ['sh'] }] });
    const after = await mutated(pod);
    expect(after.spec.containers.map((c: Json) => c.name)).toEqual(['web']);
    expect(after.spec.containers[0].image).toBe(PINNED_APP);
    expect((await validated(storedByApiServer(after))).allowed).toBe(true);
  });

  it('replaces a token volume the pod brought under the reserved name', async () => {
    const pod = userPod({ volumes: [{ name: 'imagegate-token', hostPath: { path: '/var/lib/kubelet/pods' } }] });
    const after = await mutated(pod);
    expect(after.spec.volumes).toEqual([tokenVolume(check)]);
  });

  it('puts the check first again when re-invoked after a mesh webhook put its init container first', async () => {
    const first = await mutated(userPod());
    // What a service mesh's mutating webhook does after imagegate's: its own init container, first.
    const meshed = applyJsonPatch(first, [{ op: 'add', path: '/spec/initContainers/0', value: { name: 'istio-init', image: MESH_IMAGE } }]);
    expect((await validated(storedByApiServer(meshed))).message).toMatch(/istio-init/);

    const again = await mutated(meshed);
    expect(again.spec.initContainers.map((c: Json) => c.name)).toEqual(['imagegate-check', 'istio-init']);
    expect(again.spec.volumes.map((v: Json) => v.name)).toEqual(['imagegate-token']);
    expect((await validated(storedByApiServer(again))).allowed).toBe(true);
  });
});

describe('the check container as injected', () => {
  it('runs an explicit command, pins the Node.js start-up environment empty, and leaves nothing to default', () => {
    const c = expectedCheck();
    expect(c.command).toEqual(CHECK_COMMAND);
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'NODE_OPTIONS', value: '' }, { name: 'NODE_PATH', value: '' }]));
    expect(c).toMatchObject({ imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'FallbackToLogsOnError' });
    // Every limit has its request, so the API server has no requests to copy from limits.
    const { requests, limits } = c.resources as { requests: Json; limits: Json };
    for (const name of Object.keys(limits)) expect(requests[name], name).toBeDefined();
    expect(checkIsIntact({ initContainers: [c], volumes: [tokenVolume(check)] }, c, tokenVolume(check))).toBeUndefined();
  });

  it('starts the CLI the way deploy/Dockerfile\'s runtime image does', async () => {
    const dockerfile = await readFile(path.join(import.meta.dirname, '../../../deploy/Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.indexOf(' AS runtime'));
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1];
    expect(entrypoint, 'the runtime stage has an exec-form ENTRYPOINT').toBeDefined();
    expect(JSON.parse(entrypoint!)).toEqual(CHECK_COMMAND);
  });

  it("trusts the registry CA the webhook was given, and reaches plain-HTTP loopback registries only where the policy lists them", async () => {
    const withRegistry: CheckContainerSettings = { ...check, registryCa: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };
    const c = keyAccessCheckContainer({ ...withRegistry, insecureRegistries: ['127.0.0.1:5000'] }, [PINNED_APP]);
    expect(c.args).toEqual(['init', '--check', '--insecure-registry', '127.0.0.1:5000', `docker://${PINNED_APP}`]);
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'IMAGEGATE_REGISTRY_CA', value: withRegistry.registryCa }]));
    // The policy's list reaches the injected check through admission.
    const out = await admit(review({ spec: { containers: [{ name: 'app', image: 'reg.example/prod/app:1' }] } }), { ...deps, check: withRegistry, policy: () => ({ ...policy, insecureRegistries: ['127.0.0.1:5000'] }) }, true);
    const patch = JSON.parse(Buffer.from(out.response.patch!, 'base64').toString()) as Array<{ path: string; value: Json }>;
    const injected = patch.find((op) => op.path === '/spec/initContainers')!.value as unknown as Json[];
    expect(injected[0]!.args).toContain('--insecure-registry');
    // A pod that swaps the CA is refused like any other change to the check.
    const swapped = { ...c, env: (c.env as Json[]).map((e) => (e.name === 'IMAGEGATE_REGISTRY_CA' ? { ...e, value: 'attacker CA' } : e)) };
    expect(checkIsIntact({ initContainers: [swapped], volumes: [tokenVolume(check)] }, c, tokenVolume(check))).toMatch(/altered \(env\)/);
  });
});
