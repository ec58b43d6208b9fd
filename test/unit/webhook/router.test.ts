import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdmissionDeps } from '../../../src/admission/admit.js';
import type { ResolvedImage } from '../../../src/admission/image-facts.js';
import { ImagegateError } from '../../../src/errors.js';
import { WebhookMetrics } from '../../../webhook/metrics.js';
import { webhookRouter } from '../../../webhook/router.js';
import { protectingPolicy } from '../../support/admission-policy.js';

const review = (uid: string): string =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE', object: { metadata: { name: 'web' }, spec: { containers: [{ name: 'web', image: 'reg.example/prod/app:1' }] } } },
  });

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** The router on plain HTTP (TLS is server.ts's concern), with look-ups that fail as `resolve` says. */
async function serve(resolve: AdmissionDeps['resolve']): Promise<{ url: string; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = [];
  const metrics = new WebhookMetrics({ certificateExpiry: () => 0 });
  const deps: AdmissionDeps = { policy: () => protectingPolicy('reg.example/prod/**'), resolve, budgetMs: 1_000 };
  const route = webhookRouter({ deps, metrics, log: (r) => logs.push(r), maxBodyBytes: 64 * 1024, isReady: () => true });
  server = createServer((req, res) => void route(req, res));
  await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, logs };
}

async function post(url: string, body: string | Readable, type = 'application/json'): Promise<number> {
  const res = await request(url, { method: 'POST', body, headers: { 'content-type': type } });
  await res.body.dump();
  return res.statusCode;
}

describe('the webhook router', () => {
  it('counts and logs a failed review by the ImagegateError code of its look-up', async () => {
    const { url, logs } = await serve(async (): Promise<ResolvedImage> => {
      throw new ImagegateError('AUTH', 'registry reg.example refused the credentials');
    });
    expect(await post(`${url}/validate`, review('uid-1'))).toBe(200);
    const scrape = await request(`${url}/metrics`);
    expect(scrape.headers['content-type']).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    const text = await scrape.body.text();
    expect(text).toContain('imagegate_upstream_errors_total{hook="validate",code="AUTH"} 1\n');
    expect(text).toContain('imagegate_admission_decisions_total{hook="validate",result="error",rule="resolve"} 1\n');
    expect(logs.find((r) => r.msg === 'admission')).toMatchObject({ level: 'warn', uid: 'uid-1', hook: 'validate', name: 'web', result: 'error', code: 'AUTH', message: expect.stringMatching(/refused the credentials/) });
  });

  it('counts requests refused before admission by reason, and logs no review for them', async () => {
    const { url, logs } = await serve(async () => {
      throw new Error('not reached');
    });
    expect(await post(`${url}/validate`, '{}', 'text/plain')).toBe(415);
    expect(await post(`${url}/mutate`, 'not json')).toBe(400);
    // Too large by its Content-Length: dropped unread. Too large only once read (chunked): answered 413.
    await expect(post(`${url}/mutate`, 'x'.repeat(65 * 1024))).rejects.toThrow();
    const chunked = Readable.from(Array.from({ length: 65 }, () => Buffer.alloc(1024, 'x')));
    expect(await post(`${url}/mutate`, chunked)).toBe(413);
    const text = await (await request(`${url}/metrics`)).body.text();
    for (const reason of ['content-type', 'malformed']) expect(text).toContain(`imagegate_bad_requests_total{reason="${reason}"} 1\n`);
    expect(text).toContain('imagegate_bad_requests_total{reason="too-large"} 2\n');
    expect(logs).toEqual([]);
  });
});
