import { randomUUID } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { ImagegateError } from '../errors.js';
import type { JsonObject } from '../image/validate.js';
import type { AdmissionRequest, AdmissionResponse } from './review.js';
import { isAdmittedKind } from '../pod-model/workload.js';

/** An object of the manifests that the webhook does not judge (a ConfigMap, a Service, a CRD): counted, not reviewed. */
export interface SkippedObject {
  /** Where it was: `app.yaml (document 2)`, `list.yaml (document 1, item 3)`. */
  where: string;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A request to review, and where its object was written. */
export interface ManifestReview {
  where: string;
  request: AdmissionRequest;
}

export interface ManifestObjects {
  reviews: ManifestReview[];
  skipped: SkippedObject[];
}

/**
 * AdmissionReview requests built from the manifests a user would `kubectl apply` (Pods, Deployments, Jobs, …), so
 * a policy can be tried against them before a cluster sees them: in-process, or against a running webhook. A
 * platform repository's manifests hold every kind: those the webhook does not judge are returned as skipped, and
 * `kind: List` (or `PodList`, `DeploymentList`… as `kubectl get -o yaml` writes) is expanded into its items, as
 * kubectl apply does. A document that is not a Kubernetes object at all is still an error: CI should fail on it.
 */
export function reviewsFromManifests(text: string, where: string, namespace?: string): ManifestObjects {
  const docs = parseAllDocuments(text);
  const out: ManifestObjects = { reviews: [], skipped: [] };
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    const label = `${where} (document ${i + 1})`;
    if (doc.errors.length > 0) throw new ImagegateError('USAGE', `${label} is not valid YAML: ${doc.errors[0]!.message}`);
    const object: unknown = doc.toJS();
    if (object === null || object === undefined) continue;
    addObject(out, object, label, namespace);
  }
  return out;
}

function addObject(out: ManifestObjects, object: unknown, label: string, namespace: string | undefined, inherited?: { apiVersion: string; kind: string }): void {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new ImagegateError('USAGE', `${label} is not a Kubernetes object`);
  const o = object as JsonObject;
  // Items of a typed list (PodList) may leave out their own apiVersion and kind.
  const kind = typeof o.kind === 'string' ? o.kind : inherited?.kind;
  const apiVersion = typeof o.apiVersion === 'string' ? o.apiVersion : inherited?.apiVersion;
  if (kind === undefined || apiVersion === undefined) throw new ImagegateError('USAGE', `${label} needs apiVersion and kind`);
  const metadata = (typeof o.metadata === 'object' && o.metadata !== null && !Array.isArray(o.metadata) ? o.metadata : {}) as JsonObject;
  if (kind.endsWith('List') && Array.isArray(o.items)) {
    const itemKind = kind === 'List' ? undefined : { apiVersion, kind: kind.slice(0, -'List'.length) };
    o.items.forEach((item: unknown, j) => addObject(out, item, `${label.slice(0, -1)}, item ${j + 1})`, namespace, itemKind));
    return;
  }
  const ownNamespace = typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
  if (!isAdmittedKind(kind)) {
    out.skipped.push({ where: label, apiVersion, kind, ...(ownNamespace !== undefined ? { namespace: ownNamespace } : {}), name: objectName(metadata) });
    return;
  }
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/', 2) as [string, string]) : ['', apiVersion];
  const ns = namespace ?? ownNamespace ?? 'default';
  out.reviews.push({
    where: label,
    request: {
      uid: randomUUID(),
      kind: { group, version, kind },
      namespace: ns,
      operation: 'CREATE',
      object: { ...o, apiVersion, kind, metadata: { ...metadata, namespace: ns } },
      dryRun: true,
      user: 'imagegate webhook review',
    },
  });
}

/** An object's name as people read it: its name, `PREFIX…` for a generateName, or `(unnamed)`. */
export function objectName(metadata: JsonObject | undefined): string {
  return typeof metadata?.name === 'string' ? metadata.name : typeof metadata?.generateName === 'string' ? `${metadata.generateName}…` : '(unnamed)';
}

/** The name a user knows an object by: `Pod shop/web`. */
export function objectLabel(req: AdmissionRequest): string {
  return `${req.kind.kind} ${req.namespace}/${objectName(req.object?.metadata as JsonObject | undefined)}`;
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

/** What `webhook review` reports per object: the webhook's answer, or that it could not give one. */
export type ReviewVerdict = 'allowed' | 'denied' | 'undecided';

/**
 * Tells "decided no" from "could not decide". admit() answers a review whose look-ups failed or ran out of time with
 * an HTTP 500 status (InternalError), and a policy denial with 403 (Forbidden); a running webhook sends the same
 * response, so both ways of reviewing are judged by this one structural field, not by message text.
 */
export function reviewVerdict(res: AdmissionResponse): ReviewVerdict {
  if (res.allowed) return 'allowed';
  return res.status !== undefined && res.status.code >= 500 ? 'undecided' : 'denied';
}
