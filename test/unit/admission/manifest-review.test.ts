import { describe, expect, it } from 'vitest';
import { admit } from '../../../src/admission/admit.js';
import type { ResolvedImage } from '../../../src/admission/image-facts.js';
import { admissionReviewRequest, objectLabel, reviewsFromManifests, reviewVerdict } from '../../../src/admission/manifest-review.js';
import { parseAdmissionReview, type AdmissionRequest } from '../../../src/admission/review.js';
import { ImagegateError } from '../../../src/errors.js';
import { protectingPolicy } from '../../support/admission-policy.js';

function requests(text: string, where: string, namespace?: string): AdmissionRequest[] {
  return reviewsFromManifests(text, where, namespace).reviews.map((r) => r.request);
}

const MANIFESTS = `
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec: { containers: [{ name: web, image: reg.example/shop/web:1 }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec: { containers: [{ name: api, image: reg.example/shop/api:1 }] }
---
`;

describe('webhook review: AdmissionReviews from manifests', () => {
  it('builds one CREATE request per object, in its own namespace or "default"', () => {
    const reqs = requests(MANIFESTS, 'app.yaml');
    expect(reqs.map(objectLabel)).toEqual(['Pod shop/web', 'Deployment default/api']);
    expect(reqs[1]!.kind).toEqual({ group: 'apps', version: 'v1', kind: 'Deployment' });
    expect(reqs[0]!.kind).toEqual({ group: '', version: 'v1', kind: 'Pod' });
    expect(reqs.every((r) => r.operation === 'CREATE' && r.dryRun)).toBe(true);
  });

  it('--namespace overrides the objects’ own namespace, in the request and in the object', () => {
    const [pod] = requests(MANIFESTS, 'app.yaml', 'staging');
    expect(pod!.namespace).toBe('staging');
    expect((pod!.object!.metadata as { namespace: string }).namespace).toBe('staging');
  });

  it('what it sends is an AdmissionReview the webhook itself accepts', () => {
    const [pod] = requests(MANIFESTS, 'app.yaml');
    const parsed = parseAdmissionReview(JSON.parse(JSON.stringify(admissionReviewRequest(pod!))));
    expect(parsed).toMatchObject({ uid: pod!.uid, namespace: 'shop', operation: 'CREATE', kind: pod!.kind, dryRun: true });
    expect(parsed.object).toEqual(pod!.object);
  });

  it('counts and skips kinds the webhook does not check, instead of stopping at the first one', () => {
    const found = reviewsFromManifests(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\n---\n${MANIFESTS}---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n`, 'all.yaml');
    expect(found.reviews.map((r) => objectLabel(r.request))).toEqual(['Pod shop/web', 'Deployment default/api']);
    expect(found.reviews.map((r) => r.where)).toEqual(['all.yaml (document 2)', 'all.yaml (document 3)']);
    expect(found.skipped).toEqual([
      { where: 'all.yaml (document 1)', apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'settings' },
      { where: 'all.yaml (document 5)', apiVersion: 'v1', kind: 'Service', name: 'web' },
    ]);
  });

  it('expands kind: List and typed lists (kubectl get -o yaml), whose items may leave out apiVersion and kind', () => {
    const list = `apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: Pod, metadata: { name: a, namespace: shop }, spec: { containers: [{ name: a, image: reg.example/a:1 }] } }
  - { apiVersion: v1, kind: Secret, metadata: { name: s } }
---
apiVersion: v1
kind: PodList
items:
  - { metadata: { name: b }, spec: { containers: [{ name: b, image: reg.example/b:1 }] } }
`;
    const found = reviewsFromManifests(list, 'list.yaml');
    expect(found.reviews.map((r) => [r.where, objectLabel(r.request)])).toEqual([
      ['list.yaml (document 1, item 1)', 'Pod shop/a'],
      ['list.yaml (document 2, item 1)', 'Pod default/b'],
    ]);
    expect(found.reviews[1]!.request.object).toMatchObject({ apiVersion: 'v1', kind: 'Pod' });
    expect(found.skipped).toEqual([{ where: 'list.yaml (document 1, item 2)', apiVersion: 'v1', kind: 'Secret', name: 's' }]);
  });

  it('names the document and the problem for documents that are not Kubernetes objects', () => {
    expect(() => reviewsFromManifests('kind: Pod\n', 'p.yaml')).toThrow(/p\.yaml \(document 1\) needs apiVersion and kind/);
    expect(() => reviewsFromManifests('a: [\n', 'bad.yaml')).toThrow(/bad\.yaml \(document 1\) is not valid YAML/);
    expect(() => reviewsFromManifests('- 1\n', 'seq.yaml')).toThrow(/seq\.yaml \(document 1\) is not a Kubernetes object/);
    expect(() => reviewsFromManifests('apiVersion: v1\nkind: List\nitems: [{kind: Pod}]\n', 'l.yaml')).toThrow(/l\.yaml \(document 1, item 1\) needs apiVersion and kind/);
    expect(reviewsFromManifests('---\n', 'empty.yaml')).toEqual({ reviews: [], skipped: [] });
  });
});

describe('webhook review: verdicts', () => {
  const policy = protectingPolicy('reg.example/shop/**');
  const [pod] = requests(MANIFESTS, 'app.yaml');
  const plain: ResolvedImage = { repository: 'reg.example/shop/web', digest: `sha256:${'d'.repeat(64)}`, platforms: [{ layers: 1, encryptedLayers: 0, schemes: [], offlineSchemes: [], serviceKeys: [], layersWithoutServiceKey: 0 }] };

  it("a policy denial is 'denied'; a look-up that failed or ran out of time is 'undecided', whatever its message says", async () => {
    const denied = await admit(pod!, { policy: () => policy, resolve: async () => plain, budgetMs: 1000 }, false);
    expect(reviewVerdict(denied.response)).toBe('denied');
    const unreachable = await admit(pod!, { policy: () => policy, resolve: async () => Promise.reject(new ImagegateError('REGISTRY', 'cannot reach reg.example')), budgetMs: 1000 }, false);
    expect(reviewVerdict(unreachable.response)).toBe('undecided');
    const slow = await admit(pod!, { policy: () => policy, resolve: () => new Promise<ResolvedImage>(() => {}), budgetMs: 100 }, false);
    expect(slow.result).toBe('error');
    expect(reviewVerdict(slow.response)).toBe('undecided');
    const allowed = await admit(pod!, { policy: () => ({ ...policy, repositories: [] }), resolve: async () => plain, budgetMs: 1000 }, false);
    expect(reviewVerdict(allowed.response)).toBe('allowed');
  });
});
