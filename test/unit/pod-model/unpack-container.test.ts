/**
 * The pod model's injected `imagegate init --unpack` container, as a real kubelet runs it. Found in the one-node
 * cluster (test/integration/cluster-gate.test.ts): a pod whose identity may not unwrap the key failed with an empty
 * termination message, because the container did not say FallbackToLogsOnError (the CLI writes no
 * /dev/termination-log), so `kubectl describe pod` did not say why.
 */
import { describe, expect, it } from 'vitest';
import { keyAccessCheckContainer, unpackContainer, type CheckContainerSettings } from '../../../src/pod-model/injected-containers.js';

const settings: CheckContainerSettings = {
  image: `reg.example/imagegate@sha256:${'c'.repeat(64)}`,
  vaultAddress: 'https://vault.example:8200',
  authMethod: 'jwt',
  vaultRole: 'workloads',
  audience: 'vault',
};
const IMAGE = `reg.example/prod/app@sha256:${'d'.repeat(64)}`;

describe('the pod model unpack container', () => {
  it('takes its termination message from its log when it fails, as the node model check does', () => {
    const unpack = unpackContainer(settings, 'app', IMAGE, ['app'], ['imagegate-0-0']);
    expect(unpack).toMatchObject({ terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'FallbackToLogsOnError' });
  });

  it('leaves nothing for the API server to default that the check sets (pull policy: the image is pinned by digest)', () => {
    const unpack = unpackContainer(settings, 'app', IMAGE, ['app'], ['imagegate-0-0']);
    const check = keyAccessCheckContainer(settings, [IMAGE]);
    for (const field of ['imagePullPolicy', 'terminationMessagePath', 'terminationMessagePolicy'] as const) {
      expect(unpack[field], field).toBe(check[field]);
    }
  });
});
