import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { admit, type AdmissionDeps } from '../src/admission/admit.js';
import { apiServerTimeoutMs } from '../src/admission/look-up-budget.js';
import { admissionReviewResponse, parseAdmissionReview } from '../src/admission/review.js';
import type { TtlCache } from '../src/admission/ttl-cache.js';
import { ImagegateError, systemErrorCode } from '../src/errors.js';
import { addressOf } from '../src/util/system-errors.js';
import { Counter, Gauge, Histogram, MetricsRegistry } from './metrics.js';

export interface WebhookServerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  deps: AdmissionDeps;
  /** For cache metrics. */
  cache?: TtlCache<unknown>;
  /** One JSON object per line; never bodies, tokens or keys. */
  log?: (record: Record<string, unknown>) => void;
  /** AdmissionReviews larger than this are refused (the API server's own limit is 3 MiB per object). */
  maxBodyBytes?: number;
  /** How often certificate files are checked for rotation. */
  certPollMs?: number;
}

export interface WebhookServer {
  url: string;
  port: number;
  metrics: MetricsRegistry;
  /** Stops taking requests (readiness fails at once), finishes those in flight, then closes. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 3 * 1024 * 1024;

/**
 * The admission webhook over HTTPS: `POST /mutate` and `POST /validate` take AdmissionReview v1; `/healthz`,
 * `/readyz` and `/metrics` (Prometheus). Certificates are re-read when their files change (cert-manager and kubelet
 * rotate them in place), without a restart.
 */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const log = options.log ?? ((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const metrics = new MetricsRegistry();
  const decisions = metrics.register(new Counter('imagegate_admission_decisions_total', 'Admission decisions by hook, result and rule'));
  const latency = metrics.register(new Histogram('imagegate_admission_duration_seconds', 'Time to answer an AdmissionReview', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]));
  const upstreamErrors = metrics.register(new Counter('imagegate_upstream_errors_total', 'Registry look-ups that failed, by hook'));
  const badRequests = metrics.register(new Counter('imagegate_bad_requests_total', 'Requests refused before admission, by reason'));
  if (options.cache !== undefined) {
    const cache = options.cache;
    metrics.register(new Gauge('imagegate_image_cache_hits_total', 'Image look-ups answered from the cache', () => cache.hits, 'counter'));
    metrics.register(new Gauge('imagegate_image_cache_misses_total', 'Image look-ups that went to a registry', () => cache.misses, 'counter'));
    metrics.register(new Gauge('imagegate_image_cache_entries', 'Images in the cache', () => cache.size));
  }

  let ready = true;
  /** When the certificate being served expires (Unix seconds), for the expiry alert whatever issued it. */
  let certificateExpiry = 0;
  const loadTls = (): { cert: Buffer; key: Buffer } => {
    const pair = readTlsPair(options.certFile, options.keyFile);
    certificateExpiry = Date.parse(new X509Certificate(pair.cert).validTo) / 1000;
    return pair;
  };
  metrics.register(new Gauge('imagegate_tls_certificate_expiry_timestamp_seconds', 'When the serving certificate expires (Unix time)', () => certificateExpiry));
  const server = https.createServer({ ...loadTls(), minVersion: 'TLSv1.2' }, (req, res) => {
    void handle(req, res).catch((e: unknown) => {
      log({ level: 'error', msg: 'unhandled', error: e instanceof Error ? e.message : String(e) });
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  const reloadCert = (): void => {
    try {
      server.setSecureContext(loadTls());
      log({ level: 'info', msg: 'reloaded TLS certificate', cert: options.certFile });
    } catch (e) {
      log({ level: 'error', msg: 'could not reload TLS certificate; keeping the old one', error: e instanceof Error ? e.message : String(e) });
    }
  };
  const pollMs = options.certPollMs ?? 5_000;
  watchFile(options.certFile, { interval: pollMs, persistent: false }, reloadCert);
  watchFile(options.keyFile, { interval: pollMs, persistent: false }, reloadCert);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, 'text/plain', 'ok\n');
    if (req.method === 'GET' && path === '/readyz') return ready ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'shutting down\n');
    if (req.method === 'GET' && path === '/metrics') return send(res, 200, 'text/plain; version=0.0.4', metrics.render());
    if (path !== '/mutate' && path !== '/validate') return send(res, 404, 'text/plain', 'not found\n');
    if (req.method !== 'POST') return send(res, 405, 'text/plain', 'POST an AdmissionReview\n');
    const hook = path.slice(1);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (type !== 'application/json') {
      badRequests.inc({ reason: 'content-type' });
      req.resume();
      return send(res, 415, 'text/plain', `expected Content-Type application/json, got ${JSON.stringify(type)}\n`);
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBody) {
      badRequests.inc({ reason: 'too-large' });
      req.destroy();
      return;
    }
    const body = await readBody(req, maxBody);
    if (body === undefined) {
      badRequests.inc({ reason: 'too-large' });
      return send(res, 413, 'text/plain', `AdmissionReview larger than ${maxBody} bytes\n`);
    }
    let request;
    try {
      request = parseAdmissionReview(JSON.parse(body.toString('utf8')));
    } catch (e) {
      badRequests.inc({ reason: 'malformed' });
      const why = e instanceof SyntaxError ? 'the body is not JSON' : e instanceof Error ? e.message : String(e);
      return send(res, 400, 'text/plain', `malformed AdmissionReview: ${why}\n`);
    }
    const started = performance.now();
    const outcome = await admit(request, options.deps, hook === 'mutate', { apiServerTimeoutMs: apiServerTimeoutMs(req.url) });
    const seconds = (performance.now() - started) / 1000;
    latency.observe(seconds, { hook });
    for (const rule of outcome.rules.length > 0 ? outcome.rules : ['']) decisions.inc({ hook, result: outcome.result, rule });
    if (outcome.result === 'error') upstreamErrors.inc({ hook });
    const object = request.object as { metadata?: { name?: string; generateName?: string } } | undefined;
    log({
      level: outcome.result === 'denied' || outcome.result === 'error' ? 'warn' : 'info',
      msg: 'admission',
      uid: request.uid,
      hook,
      kind: request.kind.kind,
      subResource: request.subResource,
      namespace: request.namespace,
      name: object?.metadata?.name ?? object?.metadata?.generateName,
      operation: request.operation,
      dryRun: request.dryRun,
      user: request.user,
      result: outcome.result,
      rules: outcome.rules,
      ms: Math.round(seconds * 1000),
      ...(outcome.response.status !== undefined ? { message: outcome.response.status.message } : {}),
    });
    return send(res, 200, 'application/json', JSON.stringify(admissionReviewResponse(outcome.response)));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(listenError(e, options.host, options.port)));
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  log({ level: 'info', msg: 'webhook listening', url: `https://${host}:${port}` });
  return {
    url: `https://${host}:${port}`,
    port,
    metrics,
    async close() {
      ready = false;
      unwatchFile(options.certFile);
      unwatchFile(options.keyFile);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

/**
 * The serving certificate and key, checked one by one and as a pair, so a wrong file is named (at start-up exit 2;
 * on rotation the old pair stays). A key that does not match the certificate is the common case: cert-manager
 * or a hand-made secret updating one file before the other, or two files from different runs of openssl.
 */
export function readTlsPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new ImagegateError('USAGE', `cannot read the TLS ${what} ${file} (${systemErrorCode(e) ?? String(e)}); check the --${what === 'certificate' ? 'cert' : 'key'} path`);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (e) {
    throw new ImagegateError('USAGE', `TLS certificate ${certFile} is not a PEM certificate (${(e as Error).message}); --cert takes the serving certificate, e.g. tls.crt`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new ImagegateError('USAGE', `TLS key ${keyFile} is not a PEM private key (${(e as Error).message}); --key takes the key of the serving certificate, e.g. tls.key`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ImagegateError(
      'USAGE',
      `TLS key ${keyFile} does not belong to certificate ${certFile} (its public key differs); give the key the certificate was issued for, from the same Secret or the same openssl run`,
    );
  }
  return { cert, key };
}

/** Why the server could not listen, in terms of --listen. */
function listenError(e: unknown, host: string, port: number): Error {
  const address = addressOf(e) ?? `${host}:${port}`;
  const code = systemErrorCode(e);
  if (code === 'EADDRINUSE') {
    return new ImagegateError('USAGE', `cannot listen on ${address}: another process is using that port (perhaps another webhook); stop it, or choose a free port with --listen HOST:PORT`, { cause: e });
  }
  if (code === 'EADDRNOTAVAIL') {
    return new ImagegateError('USAGE', `cannot listen on ${address}: it is not an address of this machine; give one of its addresses, or 0.0.0.0, with --listen`, { cause: e });
  }
  if (code === 'EACCES') {
    return new ImagegateError('USAGE', `cannot listen on ${address}: ports below 1024 need privileges; choose a port of 1024 or more with --listen`, { cause: e });
  }
  return e instanceof Error ? e : new Error(String(e));
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The body, or undefined when it exceeds `limit` (the rest is drained so the connection stays usable). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return size > limit ? undefined : Buffer.concat(chunks);
}
