import { Registry, register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AdmissionOutcome } from '../../../src/admission/admit.js';
import { allow, deny } from '../../../src/admission/review.js';
import { TtlCache } from '../../../src/admission/ttl-cache.js';
import { WebhookMetrics } from '../../../webhook/metrics.js';

/** The `# TYPE` of every metric in an exposition. */
function typesOf(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

async function cacheWithTwoHitsAndOneMiss(): Promise<TtlCache<unknown>> {
  const cache = new TtlCache<unknown>({ maxEntries: 10, ttlMs: 60_000, negativeTtlMs: 1_000 });
  await cache.get('reg.example/app:1', async () => 'resolved');
  await cache.get('reg.example/app:1', async () => 'resolved');
  await cache.get('reg.example/app:1', async () => 'resolved');
  return cache;
}

describe('webhook metrics', () => {
  it('types every count as a counter, the cache counts included, and reads them afresh at each scrape', async () => {
    const cache = await cacheWithTwoHitsAndOneMiss();
    const metrics = new WebhookMetrics({ cache, certificateExpiry: () => 1_800_000_000 });
    const first = (await metrics.exposition()).text;
    const types = typesOf(first);
    for (const name of ['imagegate_admission_decisions_total', 'imagegate_upstream_errors_total', 'imagegate_bad_requests_total', 'imagegate_image_cache_hits_total', 'imagegate_image_cache_misses_total']) {
      expect(types.get(name), name).toBe('counter');
    }
    expect(types.get('imagegate_admission_duration_seconds')).toBe('histogram');
    expect(types.get('imagegate_image_cache_entries')).toBe('gauge');
    expect(types.get('imagegate_tls_certificate_expiry_timestamp_seconds')).toBe('gauge');
    // Every imagegate name ending in _total is a counter: Prometheus's rate() is only right on those. (prom-client's
    // own nodejs_active_*_total are gauges; their names are not ours to change.)
    expect([...types].filter(([name, type]) => name.startsWith('imagegate_') && name.endsWith('_total') && type !== 'counter')).toEqual([]);
    expect(first).toContain('imagegate_image_cache_hits_total 2\n');
    expect(first).toContain('imagegate_image_cache_misses_total 1\n');
    expect(first).toContain('imagegate_image_cache_entries 1\n');
    expect(first).toContain('imagegate_tls_certificate_expiry_timestamp_seconds 1800000000\n');
    // A second scrape reports the cache's count, not the sum of every scrape.
    await cache.get('reg.example/app:1', async () => 'resolved');
    expect((await metrics.exposition()).text).toContain('imagegate_image_cache_hits_total 3\n');
  });

  it('labels failed look-ups by the ImagegateError code of the review', async () => {
    const metrics = new WebhookMetrics({ certificateExpiry: () => 0 });
    const failed = (code: AdmissionOutcome['code']): AdmissionOutcome => ({ response: deny('u', 'could not check', 'InternalError', 500), result: 'error', rules: ['resolve'], code });
    metrics.recordReview('validate', failed('AUTH'), 0.01);
    metrics.recordReview('validate', failed('AUTH'), 0.01);
    metrics.recordReview('mutate', failed('NOT_FOUND'), 0.01);
    metrics.recordReview('validate', { response: allow('u'), result: 'allowed', rules: [] }, 0.01);
    const { text } = await metrics.exposition();
    expect(text).toContain('imagegate_upstream_errors_total{hook="validate",code="AUTH"} 2\n');
    expect(text).toContain('imagegate_upstream_errors_total{hook="mutate",code="NOT_FOUND"} 1\n');
    expect(text).toContain('imagegate_admission_decisions_total{hook="validate",result="error",rule="resolve"} 2\n');
    expect(text).toContain('imagegate_admission_decisions_total{hook="validate",result="allowed",rule=""} 1\n');
    expect(text.match(/^imagegate_upstream_errors_total/gm)).toHaveLength(2);
  });

  it('exports process and Node runtime metrics, in a registry of its own', async () => {
    const metrics = new WebhookMetrics({ certificateExpiry: () => 0 });
    const types = typesOf((await metrics.exposition()).text);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds', 'nodejs_version_info']) {
      expect(types.has(name), name).toBe(true);
    }
    // A second server in the same process registers the same names without a clash, and the global registry,
    // which a library in the same process may use, holds none of them.
    expect(() => new WebhookMetrics({ certificateExpiry: () => 0 })).not.toThrow();
    expect(globalRegistry.getSingleMetric('imagegate_admission_decisions_total')).toBeUndefined();
    expect(globalRegistry.getSingleMetric('process_cpu_seconds_total')).toBeUndefined();
  });

  it('names the Prometheus text format in its content type', async () => {
    expect((await new WebhookMetrics({ certificateExpiry: () => 0 }).exposition()).contentType).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
  });
});
