import type { IncomingMessage, ServerResponse } from 'node:http';
import { admit, type AdmissionDeps } from '../src/admission/admit.js';
import { apiServerTimeoutMs } from '../src/admission/look-up-budget.js';
import { admissionReviewResponse } from '../src/admission/review.js';
import type { Hook, WebhookMetrics } from './metrics.js';
import { readAdmissionReview } from './request-body.js';
import { admissionLogRecord, type LogRecordWriter } from './request-log.js';

export interface RouterOptions {
  deps: AdmissionDeps;
  metrics: WebhookMetrics;
  log: LogRecordWriter;
  /** AdmissionReviews larger than this are refused. */
  maxBodyBytes: number;
  /** False once the server is shutting down: /readyz fails so no new requests are sent. */
  isReady: () => boolean;
}

/**
 * The webhook's routes: `POST /mutate` and `POST /validate` take AdmissionReview v1 and answer with its decision;
 * `GET /healthz`, `/readyz` and `/metrics` (Prometheus). Every review answered is counted and logged.
 */
export function webhookRouter(options: RouterOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { metrics, log } = options;
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, 'text/plain', 'ok\n');
    if (req.method === 'GET' && path === '/readyz') return options.isReady() ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'shutting down\n');
    if (req.method === 'GET' && path === '/metrics') {
      const { contentType, text } = await metrics.exposition();
      return send(res, 200, contentType, text);
    }
    if (path !== '/mutate' && path !== '/validate') return send(res, 404, 'text/plain', 'not found\n');
    if (req.method !== 'POST') return send(res, 405, 'text/plain', 'POST an AdmissionReview\n');
    const hook: Hook = path === '/mutate' ? 'mutate' : 'validate';
    const body = await readAdmissionReview(req, options.maxBodyBytes);
    if ('refused' in body) {
      metrics.recordRefusal(body.refused);
      return body.status !== undefined ? send(res, body.status, 'text/plain', body.message) : undefined;
    }
    const started = performance.now();
    const outcome = await admit(body.request, options.deps, hook === 'mutate', { apiServerTimeoutMs: apiServerTimeoutMs(req.url) });
    const seconds = (performance.now() - started) / 1000;
    metrics.recordReview(hook, outcome, seconds);
    log(admissionLogRecord(body.request, hook, outcome, seconds));
    return send(res, 200, 'application/json', JSON.stringify(admissionReviewResponse(outcome.response)));
  };
}

export function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
