import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../../src/image/validate.js';
import { describePodPatch } from '../../../src/pod-model/describe-patch.js';
import { keyAccessCheckContainer, tokenVolume, type CheckContainerSettings } from '../../../src/pod-model/injected-containers.js';
import { podPatch } from '../../../src/pod-model/pod-mutation.js';

const settings: CheckContainerSettings = { image: `reg.example/imagegate@sha256:${'c'.repeat(64)}`, vaultAddress: 'https://vault.example:8200', authMethod: 'jwt', vaultRole: 'workloads', audience: 'vault' };
const PINNED_APP = `reg.example/prod/app@sha256:${'d'.repeat(64)}`;
const PINNED_MIGRATE = `reg.example/prod/migrate@sha256:${'e'.repeat(64)}`;

describe('describePodPatch', () => {
  it('names what the patch does, though the check inserted first comes out as edits of the init container after it', () => {
    const pod: JsonObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { initContainers: [{ name: 'migrate', image: 'reg.example/prod/migrate:1' }], containers: [{ name: 'web', image: 'reg.example/prod/app:1' }] },
    };
    const patch = podPatch('Pod', pod, {
      images: [
        { list: 'initContainers', index: 0, image: PINNED_MIGRATE },
        { list: 'containers', index: 0, image: PINNED_APP },
      ],
      check: { container: keyAccessCheckContainer(settings, [PINNED_APP, PINNED_MIGRATE]), volume: tokenVolume(settings) },
    });
    // The operations rename initContainers/0 to the check and add migrate at the end: read as such, they mislead.
    expect(patch).toContainEqual(expect.objectContaining({ path: '/spec/initContainers/0/name', value: 'imagegate-check' }));
    expect(describePodPatch('Pod', pod, patch).sort()).toEqual(
      [`adds initContainers imagegate-check (${settings.image})`, `pins initContainers migrate: ${PINNED_MIGRATE}`, `pins containers web: ${PINNED_APP}`, 'adds volume imagegate-token'].sort(),
    );
  });
});
