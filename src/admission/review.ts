import { ImagegateError } from '../errors.js';
import { JsonReader, type JsonObject } from '../image/validate.js';

/** The parts of an `admission.k8s.io/v1` AdmissionReview request the webhook uses, validated at the edge. */
export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  subResource?: string;
  namespace: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  object: JsonObject | undefined;
  /** The object before an UPDATE, so an update that changes no image is not judged again. */
  oldObject?: JsonObject;
  dryRun: boolean;
  /** Who asked, for logs. */
  user?: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  warnings?: string[];
  patchType?: 'JSONPatch';
  /** base64 of the JSON patch. */
  patch?: string;
}

const API_VERSION = 'admission.k8s.io/v1';
const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

/** Parses an AdmissionReview body; a malformed one is an error naming the field, answered with HTTP 400. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  const where = 'AdmissionReview';
  const review = new JsonReader(where, body);
  const apiVersion = review.field('apiVersion').string();
  if (apiVersion !== API_VERSION) throw new ImagegateError('BAD_FORMAT', `${where}: apiVersion ${JSON.stringify(apiVersion)} is not ${API_VERSION}; set admissionReviewVersions: ["v1"]`);
  if (review.field('kind').string() !== 'AdmissionReview') throw new ImagegateError('BAD_FORMAT', `${where}: kind must be AdmissionReview`);
  const req = review.field('request');
  const kind = req.field('kind');
  const operation = req.field('operation').string();
  if (!(OPERATIONS as readonly string[]).includes(operation)) throw new ImagegateError('BAD_FORMAT', `${where}: $.request.operation ${JSON.stringify(operation)} is not one of ${OPERATIONS.join(', ')}`);
  const object = req.field('object').value;
  const oldObject = req.field('oldObject').value;
  const subResource = req.field('subResource').optionalString();
  const user = req.has('userInfo') ? req.field('userInfo').field('username').optionalString() : undefined;
  return {
    uid: req.field('uid').string(),
    kind: { group: kind.field('group').optionalString() ?? '', version: kind.field('version').string(), kind: kind.field('kind').string() },
    ...(subResource !== undefined && subResource !== '' ? { subResource } : {}),
    namespace: req.field('namespace').optionalString() ?? '',
    operation: operation as AdmissionRequest['operation'],
    object: object === undefined || object === null ? undefined : req.field('object').object(),
    ...(oldObject === undefined || oldObject === null ? {} : { oldObject: req.field('oldObject').object() }),
    dryRun: req.field('dryRun').value === true,
    ...(user !== undefined ? { user } : {}),
  };
}

/** Wraps a response in an AdmissionReview as the API server expects it back. */
export function admissionReviewResponse(response: AdmissionResponse): JsonObject {
  return { apiVersion: API_VERSION, kind: 'AdmissionReview', response: response as unknown as JsonObject };
}

export function allow(uid: string, extra: Partial<AdmissionResponse> = {}): AdmissionResponse {
  return { uid, allowed: true, ...extra };
}

export function deny(uid: string, message: string, reason = 'Forbidden', code = 403): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason, message } };
}
