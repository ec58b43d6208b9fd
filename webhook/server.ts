import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AdmissionDeps } from '../src/admission/admit.js';
import type { TtlCache } from '../src/admission/ttl-cache.js';
import { ImagegateError, systemErrorCode } from '../src/errors.js';
import { addressOf } from '../src/util/system-errors.js';
import { WebhookMetrics } from './metrics.js';
import { unexpectedErrorRecord, writeJsonLine, type LogRecordWriter } from './request-log.js';
import { send, webhookRouter } from './router.js';
import { ServingCertificate } from './tls-reload.js';

export interface WebhookServerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  deps: AdmissionDeps;
  /** For cache metrics. */
  cache?: TtlCache<unknown>;
  /** One JSON object per line; never bodies, tokens or keys. */
  log?: LogRecordWriter;
  /** AdmissionReviews larger than this are refused (the API server's own limit is 3 MiB per object). */
  maxBodyBytes?: number;
  /** How often certificate files are checked for rotation. */
  certPollMs?: number;
}

export interface WebhookServer {
  url: string;
  port: number;
  metrics: WebhookMetrics;
  /** Stops taking requests (readiness fails at once), finishes those in flight, then closes. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 3 * 1024 * 1024;

/**
 * The admission webhook over HTTPS (routes in router.ts), serving a certificate that is re-read when its files
 * change, without a restart.
 */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const log = options.log ?? writeJsonLine;
  const certificate = new ServingCertificate(options.certFile, options.keyFile);
  const metrics = new WebhookMetrics({ ...(options.cache !== undefined ? { cache: options.cache } : {}), certificateExpiry: () => certificate.expirySeconds });
  let ready = true;
  const route = webhookRouter({ deps: options.deps, metrics, log, maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY, isReady: () => ready });
  const server = https.createServer({ ...certificate.read(), minVersion: 'TLSv1.2' }, (req, res) => {
    void route(req, res).catch((e: unknown) => {
      log(unexpectedErrorRecord('unhandled', e));
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const stopReloading = certificate.reloadOnChange(server, options.certPollMs ?? 5_000, log);

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
      stopReloading();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
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
