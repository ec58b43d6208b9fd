import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdmissionOutcome } from '../src/admission/admit.js';
import type { TtlCache } from '../src/admission/ttl-cache.js';

export type Hook = 'mutate' | 'validate';

/** Why a request was refused before admission: the `reason` label of imagegate_bad_requests_total. */
export type RefusalReason = 'content-type' | 'too-large' | 'malformed';

export interface MetricSources {
  /** The image cache whose hits, misses and size are exported; none, no cache metrics. */
  cache?: TtlCache<unknown>;
  /** When the certificate being served expires (Unix seconds), read at each scrape. */
  certificateExpiry: () => number;
}

/**
 * What the webhook exports on /metrics (prom-client), with the process and Node runtime metrics. The names are the
 * ones deploy/monitoring's dashboard and alerts query; change them there too.
 */
export class WebhookMetrics {
  /**
   * The server's own registry, not prom-client's global one: two servers in one process (tests) would otherwise
   * clash on every name.
   */
  readonly registry = new Registry();
  private readonly decisions: Counter<'hook' | 'result' | 'rule'>;
  private readonly latency: Histogram<'hook'>;
  private readonly upstreamErrors: Counter<'hook' | 'code'>;
  private readonly refusals: Counter<'reason'>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.decisions = new Counter({ name: 'imagegate_admission_decisions_total', help: 'Admission decisions by hook, result and rule', labelNames: ['hook', 'result', 'rule'], registers });
    this.latency = new Histogram({
      name: 'imagegate_admission_duration_seconds',
      help: 'Time to answer an AdmissionReview',
      labelNames: ['hook'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'imagegate_upstream_errors_total',
      help: 'Reviews whose image look-ups failed, by hook and ImagegateError code (REGISTRY, AUTH, NOT_FOUND, …)',
      labelNames: ['hook', 'code'],
      registers,
    });
    this.refusals = new Counter({ name: 'imagegate_bad_requests_total', help: 'Requests refused before admission, by reason', labelNames: ['reason'], registers });
    const cache = sources.cache;
    if (cache !== undefined) {
      counterReadAtScrape(this.registry, 'imagegate_image_cache_hits_total', 'Image look-ups answered from the cache', () => cache.hits);
      counterReadAtScrape(this.registry, 'imagegate_image_cache_misses_total', 'Image look-ups that went to a registry', () => cache.misses);
      gaugeReadAtScrape(this.registry, 'imagegate_image_cache_entries', 'Images in the cache', () => cache.size);
    }
    gaugeReadAtScrape(this.registry, 'imagegate_tls_certificate_expiry_timestamp_seconds', 'When the serving certificate expires (Unix time)', sources.certificateExpiry);
  }

  /** One answered review: its decision per rule, how long it took and, when its look-ups failed, why (by code). */
  recordReview(hook: Hook, outcome: AdmissionOutcome, seconds: number): void {
    this.latency.observe({ hook }, seconds);
    for (const rule of outcome.rules.length > 0 ? outcome.rules : ['']) this.decisions.inc({ hook, result: outcome.result, rule });
    if (outcome.result === 'error') this.upstreamErrors.inc({ hook, code: outcome.code ?? 'REGISTRY' });
  }

  recordRefusal(reason: RefusalReason): void {
    this.refusals.inc({ reason });
  }

  /** The text for a scrape, and the content type that names its format. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

/**
 * A counter whose value another object keeps (the cache counts its own hits), typed `counter` so `rate()` applies
 * and its `_total` name is what it says. prom-client counters only grow by `inc`, so each scrape starts from zero.
 */
function counterReadAtScrape(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function gaugeReadAtScrape(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}
