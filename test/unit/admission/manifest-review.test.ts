import { describe, expect, it } from 'vitest';
import { admissionReviewRequest, objectLabel, reviewsFromManifests } from '../../../src/admission/manifest-review.js';
import { parseAdmissionReview } from '../../../src/admission/review.js';

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
    const reqs = reviewsFromManifests(MANIFESTS, 'app.yaml');
    expect(reqs.map(objectLabel)).toEqual(['Pod shop/web', 'Deployment default/api']);
    expect(reqs[1]!.kind).toEqual({ group: 'apps', version: 'v1', kind: 'Deployment' });
    expect(reqs[0]!.kind).toEqual({ group: '', version: 'v1', kind: 'Pod' });
    expect(reqs.every((r) => r.operation === 'CREATE' && r.dryRun)).toBe(true);
  });

  it('--namespace overrides the objects’ own namespace, in the request and in the object', () => {
    const [pod] = reviewsFromManifests(MANIFESTS, 'app.yaml', 'staging');
    expect(pod!.namespace).toBe('staging');
    expect((pod!.object!.metadata as { namespace: string }).namespace).toBe('staging');
  });

  it('what it sends is an AdmissionReview the webhook itself accepts', () => {
    const [pod] = reviewsFromManifests(MANIFESTS, 'app.yaml');
    const parsed = parseAdmissionReview(JSON.parse(JSON.stringify(admissionReviewRequest(pod!))));
    expect(parsed).toMatchObject({ uid: pod!.uid, namespace: 'shop', operation: 'CREATE', kind: pod!.kind, dryRun: true });
    expect(parsed.object).toEqual(pod!.object);
  });

  it('names the document and the problem for objects it cannot review', () => {
    expect(() => reviewsFromManifests('apiVersion: v1\nkind: Service\nmetadata: {name: s}\n', 'svc.yaml')).toThrow(
      /svc\.yaml \(document 1\): the webhook does not check Service/,
    );
    expect(() => reviewsFromManifests('kind: Pod\n', 'p.yaml')).toThrow(/p\.yaml \(document 1\) needs apiVersion and kind/);
    expect(() => reviewsFromManifests('a: [\n', 'bad.yaml')).toThrow(/bad\.yaml \(document 1\) is not valid YAML/);
    expect(() => reviewsFromManifests('---\n', 'empty.yaml')).toThrow(/empty\.yaml holds no Kubernetes objects/);
  });
});
