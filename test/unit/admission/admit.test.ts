import { describe, expect, it } from 'vitest';
import { admit } from '../../../src/admission/admit.js';
import type { ResolvedImage } from '../../../src/admission/image-facts.js';
import type { AdmissionRequest } from '../../../src/admission/review.js';
import { ImagegateError } from '../../../src/errors.js';
import type { AdmissionPolicy } from '../../../src/policy/types.js';

const digest = `sha256:${'d'.repeat(64)}`;
const plainImage: ResolvedImage = { repository: 'reg.example/prod/app', digest, platforms: [{ layers: 2, encryptedLayers: 0, schemes: [], vaultKeys: [] }] };

function policy(extra: Partial<AdmissionPolicy> = {}): AdmissionPolicy {
  return {
    apiVersion: 'imagegate.dev/v1alpha1',
    kind: 'AdmissionPolicy',
    mode: 'enforce',
    runtimeModel: 'node',
    failurePolicy: 'closed',
    namespaces: { include: ['*'], exempt: [] },
    repositories: [{ match: 'reg.example/prod/**', requireEncrypted: true, keys: [] }],
    ...extra,
  };
}

const request: AdmissionRequest = {
  uid: 'u1',
  kind: { group: '', version: 'v1', kind: 'Pod' },
  namespace: 'shop',
  operation: 'CREATE',
  object: { spec: { containers: [{ name: 'web', image: 'reg.example/prod/app:1' }, { name: 'side', image: 'reg.example/prod/app:1' }] } },
  dryRun: false,
};

describe('admit', () => {
  it('enforce denies; warn allows and tells the user; audit allows and only records', async () => {
    let lookups = 0;
    const resolve = async (): Promise<ResolvedImage> => {
      lookups++;
      return plainImage;
    };
    const enforce = await admit(request, { policy: () => policy(), resolve, budgetMs: 1000 }, true);
    expect(enforce.result).toBe('denied');
    expect(enforce.response.status?.message).toMatch(/encryption-required/);
    expect(lookups, 'one image used by two containers is resolved once').toBe(1);

    const warn = await admit(request, { policy: () => policy({ mode: 'warn' }), resolve, budgetMs: 1000 }, true);
    expect(warn).toMatchObject({ result: 'warned', response: { allowed: true } });
    expect(warn.response.warnings?.[0]).toMatch(/encryption-required/);

    const audit = await admit(request, { policy: () => policy({ mode: 'audit' }), resolve, budgetMs: 1000 }, true);
    expect(audit).toMatchObject({ result: 'audited', rules: ['encryption-required'], response: { allowed: true } });
    expect(audit.response.warnings).toBeUndefined();
  });

  it('fails closed by default and open when the policy says so, when a registry cannot answer', async () => {
    const resolve = async (): Promise<ResolvedImage> => {
      throw new ImagegateError('REGISTRY', 'cannot reach registry reg.example');
    };
    const closed = await admit(request, { policy: () => policy(), resolve, budgetMs: 1000 }, false);
    expect(closed.response).toMatchObject({ allowed: false, status: { code: 500 } });
    const open = await admit(request, { policy: () => policy({ failurePolicy: 'open' }), resolve, budgetMs: 1000 }, false);
    expect(open.response.allowed).toBe(true);
    expect(open.response.warnings?.[0]).toMatch(/failurePolicy: open.*cannot reach registry/);
  });

  it('DELETE and objects without a pod template are let through unchecked', async () => {
    const resolve = async (): Promise<ResolvedImage> => plainImage;
    expect((await admit({ ...request, operation: 'DELETE' }, { policy: () => policy(), resolve, budgetMs: 1000 }, true)).result).toBe('skipped');
    expect((await admit({ ...request, kind: { group: '', version: 'v1', kind: 'ConfigMap' } }, { policy: () => policy(), resolve, budgetMs: 1000 }, true)).result).toBe('skipped');
  });

  it('an UPDATE that changes no image is not judged again; one that swaps an image is', async () => {
    let lookups = 0;
    const resolve = async (): Promise<ResolvedImage> => {
      lookups++;
      return plainImage;
    };
    const deps = { policy: () => policy(), resolve, budgetMs: 1000 };
    const labelled = { ...request, operation: 'UPDATE' as const, object: { ...request.object, metadata: { labels: { team: 'shop' } } }, oldObject: request.object! };
    expect(await admit(labelled, deps, false)).toMatchObject({ result: 'skipped', rules: ['images unchanged'], response: { allowed: true } });
    expect(lookups).toBe(0);

    const spec = request.object!.spec as { containers: Array<{ name: string; image: string }> };
    const swapped = { ...labelled, object: { spec: { containers: [spec.containers[0], { name: 'side', image: 'reg.example/prod/app:2' }] } } };
    expect((await admit(swapped, deps, false)).result).toBe('denied');
    const noOld = { ...request, operation: 'UPDATE' as const };
    expect((await admit(noOld, deps, false)).result, 'without oldObject it is judged').toBe('denied');
  });

  it('the injected check logs in as the role the template names for the pod, and the validating hook holds it to that', async () => {
    const encrypted: ResolvedImage = { ...plainImage, platforms: [{ layers: 2, encryptedLayers: 2, schemes: ['jwe'], vaultKeys: [] }] };
    const check = { image: `reg.example/imagegate@${digest}`, vaultAddress: 'https://vault:8200', authMethod: 'jwt' as const, vaultRole: '{namespace}-{serviceAccount}', audience: 'vault' };
    const deps = { policy: () => policy(), resolve: async () => encrypted, budgetMs: 1000, check };
    const pod = { ...request, object: { spec: { serviceAccountName: 'api', containers: [{ name: 'web', image: 'reg.example/prod/app:1' }] } } };
    const mutated = await admit(pod, deps, true);
    const ops = JSON.parse(Buffer.from(mutated.response.patch!, 'base64').toString()) as Array<{ path: string; value: any }>;
    const init = ops.find((o) => o.path.endsWith('/initContainers'))!.value[0];
    expect(init.env).toContainEqual({ name: 'IMAGEGATE_VAULT_ROLE', value: 'shop-api' });

    const volumes = ops.find((o) => o.path.endsWith('/volumes'))!.value;
    const spec = { ...pod.object.spec, initContainers: [init], volumes };
    expect((await admit({ ...pod, object: { spec } }, deps, false)).result).toBe('allowed');
    const otherRole = { ...init, env: init.env.map((e: { name: string }) => (e.name === 'IMAGEGATE_VAULT_ROLE' ? { ...e, value: 'billing-api' } : e)) };
    const tampered = await admit({ ...pod, object: { spec: { ...spec, initContainers: [otherRole] } } }, deps, false);
    expect(tampered).toMatchObject({ result: 'denied', rules: ['check-container'] });
  });
});

describe('check role templates', () => {
  it('accept {namespace} and {serviceAccount} only', async () => {
    const { roleTemplateProblem, forPod } = await import('../../../src/admission/check-container.js');
    expect(roleTemplateProblem('{namespace}')).toBeUndefined();
    expect(roleTemplateProblem('workloads')).toBeUndefined();
    expect(roleTemplateProblem('{ns}')).toMatch(/only \{namespace\} and \{serviceAccount\}/);
    const base = { image: 'i', vaultAddress: 'a', authMethod: 'jwt' as const, vaultRole: 'workloads', audience: 'vault' };
    expect(forPod(base, 'shop', 'api')).toBe(base);
  });
});
