import type { IncomingMessage } from 'node:http';
import { parseAdmissionReview, type AdmissionRequest } from '../src/admission/review.js';
import type { RefusalReason } from './metrics.js';

/**
 * An AdmissionReview read from a request, or why it was refused before admission: the status and message to
 * answer with, or `status: undefined` when the connection is dropped without an answer (a declared size over the
 * limit: reading it would cost what the limit is there to spare).
 */
export type ReviewBody = { request: AdmissionRequest } | { refused: RefusalReason; status: number | undefined; message: string };

/** The AdmissionReview of a `POST`: JSON, at most `maxBytes`, valid (messages quote the bad field). */
export async function readAdmissionReview(req: IncomingMessage, maxBytes: number): Promise<ReviewBody> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type !== 'application/json') {
    req.resume();
    return { refused: 'content-type', status: 415, message: `expected Content-Type application/json, got ${JSON.stringify(type)}\n` };
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    req.destroy();
    return { refused: 'too-large', status: undefined, message: '' };
  }
  const body = await readBody(req, maxBytes);
  if (body === undefined) return { refused: 'too-large', status: 413, message: `AdmissionReview larger than ${maxBytes} bytes\n` };
  try {
    return { request: parseAdmissionReview(JSON.parse(body.toString('utf8'))) };
  } catch (e) {
    const why = e instanceof SyntaxError ? 'the body is not JSON' : e instanceof Error ? e.message : String(e);
    return { refused: 'malformed', status: 400, message: `malformed AdmissionReview: ${why}\n` };
  }
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
