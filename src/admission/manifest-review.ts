import { randomUUID } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { ImagegateError } from '../errors.js';
import type { JsonObject } from '../image/validate.js';
import type { AdmissionRequest } from './review.js';
import { isAdmittedKind } from './workload.js';

/**
 * AdmissionReview requests built from the manifests a user would `kubectl apply` (Pods, Deployments, Jobs, …), so
 * a policy can be tried against them before a cluster sees them: in-process, or against a running webhook.
 */
export function reviewsFromManifests(text: string, where: string, namespace?: string): AdmissionRequest[] {
  const docs = parseAllDocuments(text);
  const out: AdmissionRequest[] = [];
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    const label = `${where} (document ${i + 1})`;
    if (doc.errors.length > 0) throw new ImagegateError('USAGE', `${label} is not valid YAML: ${doc.errors[0]!.message}`);
    const object: unknown = doc.toJS();
    if (object === null || object === undefined) continue;
    if (typeof object !== 'object' || Array.isArray(object)) throw new ImagegateError('USAGE', `${label} is not a Kubernetes object`);
    const o = object as JsonObject;
    const kind = typeof o.kind === 'string' ? o.kind : undefined;
    const apiVersion = typeof o.apiVersion === 'string' ? o.apiVersion : undefined;
    if (kind === undefined || apiVersion === undefined) throw new ImagegateError('USAGE', `${label} needs apiVersion and kind`);
    if (!isAdmittedKind(kind)) {
      throw new ImagegateError('USAGE', `${label}: the webhook does not check ${kind}; give it Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs or CronJobs`);
    }
    const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/', 2) as [string, string]) : ['', apiVersion];
    const metadata = (typeof o.metadata === 'object' && o.metadata !== null && !Array.isArray(o.metadata) ? o.metadata : {}) as JsonObject;
    const ns = namespace ?? (typeof metadata.namespace === 'string' ? metadata.namespace : 'default');
    out.push({
      uid: randomUUID(),
      kind: { group, version, kind },
      namespace: ns,
      operation: 'CREATE',
      object: { ...o, metadata: { ...metadata, namespace: ns } },
      dryRun: true,
      user: 'imagegate webhook review',
    });
  }
  if (out.length === 0) throw new ImagegateError('USAGE', `${where} holds no Kubernetes objects`);
  return out;
}

/** The name a user knows an object by: `Pod shop/web`. */
export function objectLabel(req: AdmissionRequest): string {
  const metadata = req.object?.metadata as JsonObject | undefined;
  const name = typeof metadata?.name === 'string' ? metadata.name : typeof metadata?.generateName === 'string' ? `${metadata.generateName}…` : '(unnamed)';
  return `${req.kind.kind} ${req.namespace}/${name}`;
}

/** The AdmissionReview a webhook receives from the API server for `req`. */
export function admissionReviewRequest(req: AdmissionRequest): JsonObject {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: req.uid,
      kind: req.kind,
      resource: { group: req.kind.group, version: req.kind.version, resource: `${req.kind.kind.toLowerCase()}s` },
      namespace: req.namespace,
      operation: req.operation,
      userInfo: { username: req.user ?? 'imagegate' },
      object: req.object ?? null,
      dryRun: req.dryRun,
    },
  };
}
