import { describe, expect, it } from 'vitest';
import { admit } from '../../../src/admission/admit.js';
import { apiServerTimeoutMs, isLookUpCancelled, reviewBudgetMs } from '../../../src/admission/look-up-budget.js';
import type { ResolvedImage } from '../../../src/admission/image-facts.js';
import type { AdmissionRequest } from '../../../src/admission/review.js';
import { ImagegateError } from '../../../src/errors.js';
import type { AdmissionPolicy } from '../../../src/policy/types.js';
import { protectingPolicy } from '../../support/admission-policy.js';

const digest = `sha256:${'d'.repeat(64)}`;
const plainImage: ResolvedImage = { repository: 'reg.example/prod/app', digest, platforms: [{ layers: 2, encryptedLayers: 0, schemes: [], offlineSchemes: [], serviceKeys: [], layersWithoutServiceKey: 0 }] };

function policy(extra: Partial<AdmissionPolicy> = {}): AdmissionPolicy {
  return protectingPolicy('reg.example/prod/**', extra);
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

  it('refuses what it cannot look up in the node model, whatever failurePolicy says (the node decrypts any image)', async () => {
    const resolve = async (): Promise<ResolvedImage> => {
      throw new ImagegateError('REGISTRY', 'cannot reach registry reg.example');
    };
    const closed = await admit(request, { policy: () => policy(), resolve, budgetMs: 1000 }, false);
    expect(closed.response).toMatchObject({ allowed: false, status: { code: 500 } });
    const open = await admit(request, { policy: () => policy({ failurePolicy: 'open' }), resolve, budgetMs: 1000 }, false);
    expect(open.response).toMatchObject({ allowed: false, status: { code: 500 } });
    expect(open.response.status?.message).toMatch(/every image must be checked in the node runtime model.*cannot reach registry/);
    const unnamed = { ...request, object: { spec: { containers: [{ name: 'web', image: 'elsewhere.example/app:1' }] } } };
    expect((await admit(unnamed, { policy: () => policy({ failurePolicy: 'open' }), resolve, budgetMs: 1000 }, false)).response.allowed).toBe(false);
  });

  it('keeps the ImagegateError code of a failed look-up in the outcome, for metrics and logs; an untyped failure is REGISTRY', async () => {
    const failing = (e: Error) => async (): Promise<ResolvedImage> => {
      throw e;
    };
    const refused = await admit(request, { policy: () => policy(), resolve: failing(new ImagegateError('AUTH', 'registry reg.example refused the credentials')), budgetMs: 1000 }, false);
    expect(refused).toMatchObject({ result: 'error', code: 'AUTH' });
    const warned = await admit(request, { policy: () => policy({ mode: 'warn' }), resolve: failing(new ImagegateError('NOT_FOUND', 'no such tag')), budgetMs: 1000 }, false);
    expect(warned).toMatchObject({ result: 'error', code: 'NOT_FOUND', response: { allowed: true } });
    expect((await admit(request, { policy: () => policy(), resolve: failing(new Error('socket hang up')), budgetMs: 1000 }, false)).code).toBe('REGISTRY');
    expect((await admit(request, { policy: () => policy(), resolve: async () => plainImage, budgetMs: 1000 }, false)).code).toBeUndefined();
  });

  it('pod model: looks up only images a rule protects; failurePolicy open never admits those unchecked', async () => {
    const looked: string[] = [];
    const resolve = async (image: string): Promise<ResolvedImage> => {
      looked.push(image);
      throw new ImagegateError('REGISTRY', 'cannot reach registry');
    };
    const deps = { policy: () => policy({ runtimeModel: 'pod', failurePolicy: 'open' }), resolve, budgetMs: 1000 };
    const unprotected = { ...request, object: { spec: { containers: [{ name: 'web', image: 'nginx:1' }, { name: 'side', image: 'elsewhere.example/app:1' }] } } };
    expect(await admit(unprotected, deps, true)).toMatchObject({ result: 'allowed', response: { allowed: true } });
    expect(looked, 'no registry call for images no rule protects').toEqual([]);
    const denied = await admit(request, deps, false);
    expect(denied.response).toMatchObject({ allowed: false, status: { code: 500 } });
    expect(looked).toEqual(['reg.example/prod/app:1']);
  });

  it('in warn and audit modes a failed look-up refuses nothing (rolling out must block no pod)', async () => {
    const resolve = async (): Promise<ResolvedImage> => {
      throw new ImagegateError('REGISTRY', 'cannot reach registry reg.example');
    };
    const warn = await admit(request, { policy: () => policy({ mode: 'warn' }), resolve, budgetMs: 1000 }, true);
    expect(warn).toMatchObject({ result: 'error', response: { allowed: true } });
    expect(warn.response.warnings?.[0]).toMatch(/warn mode, so nothing is refused.*cannot reach registry/);
    const audit = await admit(request, { policy: () => policy({ mode: 'audit' }), resolve, budgetMs: 1000 }, true);
    expect(audit).toMatchObject({ result: 'error', response: { allowed: true } });
  });

  it('never looks up images of exempt namespaces', async () => {
    const resolve = async (): Promise<ResolvedImage> => {
      throw new Error('must not be called');
    };
    const exempt = await admit(request, { policy: () => policy({ namespaces: { include: ['*'], exempt: ['shop'] } }), resolve, budgetMs: 1000 }, true);
    expect(exempt).toMatchObject({ result: 'skipped', rules: ['namespace shop is exempt'] });
  });

  it('compares names in canonical form: another spelling of a protected repository is still protected', async () => {
    const resolve = async (): Promise<ResolvedImage> => plainImage;
    for (const image of ['REG.example:443/prod/app:1', 'reg.EXAMPLE/prod/app:1', 'reg.example:80/prod/app:1']) {
      const r = { ...request, object: { spec: { containers: [{ name: 'web', image }] } } };
      const out = await admit(r, { policy: () => policy({ runtimeModel: 'pod' }), resolve, budgetMs: 1000 }, false);
      expect(out.result, image).toBe('denied');
    }
  });

  it('cancels look-ups when the budget ends, and stays inside the API server timeout', async () => {
    let aborted: unknown;
    const resolve = (_image: string, ctx: { signal?: AbortSignal }): Promise<ResolvedImage> =>
      new Promise((_, reject) => {
        ctx.signal!.addEventListener('abort', () => {
          aborted = ctx.signal!.reason;
          reject(ctx.signal!.reason as Error);
        });
      });
    const out = await admit(request, { policy: () => policy(), resolve, budgetMs: 30_000 }, false, { apiServerTimeoutMs: 1000 });
    expect(out.response.status?.message).toMatch(/longer than the 500 ms budget/);
    expect(aborted).toBeInstanceOf(ImagegateError);
    expect(isLookUpCancelled(aborted)).toBe(true);
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
    const encrypted: ResolvedImage = { ...plainImage, platforms: [{ layers: 2, encryptedLayers: 2, schemes: ['jwe'], offlineSchemes: ['jwe'], serviceKeys: [], layersWithoutServiceKey: 2 }] };
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
    const { roleTemplateProblem, forPod } = await import('../../../src/pod-model/injected-containers.js');
    expect(roleTemplateProblem('{namespace}')).toBeUndefined();
    expect(roleTemplateProblem('workloads')).toBeUndefined();
    expect(roleTemplateProblem('{ns}')).toMatch(/only \{namespace\} and \{serviceAccount\}/);
    const base = { image: 'i', vaultAddress: 'a', authMethod: 'jwt' as const, vaultRole: 'workloads', audience: 'vault' };
    expect(forPod(base, 'shop', 'api')).toBe(base);
  });
});

describe('apiServerTimeoutMs', () => {
  it('reads the timeout query parameter the API server sends (a Go duration), and nothing else', () => {
    expect(apiServerTimeoutMs('/validate?timeout=10s')).toBe(10_000);
    expect(apiServerTimeoutMs('/mutate?timeout=1.5s')).toBe(1500);
    expect(apiServerTimeoutMs('/mutate?timeout=250ms')).toBe(250);
    expect(apiServerTimeoutMs('/mutate')).toBeUndefined();
    expect(apiServerTimeoutMs('/mutate?timeout=soon')).toBeUndefined();
  });
});

describe('reviewBudgetMs', () => {
  it('keeps the configured budget unless the API server waits less, then leaves a margin', () => {
    expect(reviewBudgetMs(2500, undefined)).toBe(2500);
    expect(reviewBudgetMs(2500, 10_000)).toBe(2500);
    expect(reviewBudgetMs(2500, 2000)).toBe(1500);
    expect(reviewBudgetMs(9000, 10_000)).toBe(8000);
    expect(reviewBudgetMs(2500, 100)).toBe(100);
  });
});

describe('admit: kubectl debug in the node model', () => {
  it('refuses an ephemeral container whose protected image the check, fixed at creation, does not cover', async () => {
    const digestOf = (image: string): string => `sha256:${(image.includes('debug') ? 'e' : 'd').repeat(64)}`;
    const resolve = async (image: string): Promise<ResolvedImage> => ({
      repository: 'reg.example/prod/app',
      digest: digestOf(image),
      platforms: [{ layers: 1, encryptedLayers: 1, schemes: ['jwe'], offlineSchemes: ['jwe'], serviceKeys: [], layersWithoutServiceKey: 1 }],
    });
    const check = { image: `reg.example/imagegate@sha256:${'c'.repeat(64)}`, vaultAddress: 'https://vault', authMethod: 'jwt' as const, vaultRole: 'r', audience: 'vault' };
    const deps = { policy: () => policy(), resolve, budgetMs: 1000, check };
    const created = await admit({ ...request, object: { spec: { containers: [{ name: 'web', image: 'reg.example/prod/app:1' }] } } }, deps, true);
    const patch = JSON.parse(Buffer.from(created.response.patch!, 'base64').toString()) as Array<{ op: string; path: string; value: unknown }>;
    const spec = { containers: [{ name: 'web', image: `reg.example/prod/app@${digestOf('app')}` }], ...Object.fromEntries(patch.filter((op) => op.path.split('/').length === 3).map((op) => [op.path.split('/')[2]!, op.value])) };
    const debugged = { ...spec, ephemeralContainers: [{ name: 'debugger', image: 'reg.example/prod/app:debug' }] };
    const out = await admit({ ...request, operation: 'UPDATE', subResource: 'ephemeralcontainers', object: { spec: debugged }, oldObject: { spec } }, deps, false);
    expect(out.response.allowed).toBe(false);
    expect(out.response.status?.message).toContain("ephemeral container debugger adds protected image reg.example/prod/app:debug, which the pod's imagegate-check (fixed when the pod was created) does not cover");
  });
});
