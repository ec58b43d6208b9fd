import type { AdmissionOutcome } from '../src/admission/admit.js';
import type { AdmissionRequest } from '../src/admission/review.js';
import { ImagegateError } from '../src/errors.js';
import type { Hook } from './metrics.js';

/** One JSON object per line; never bodies, tokens or keys. */
export type LogRecordWriter = (record: Record<string, unknown>) => void;

export const writeJsonLine: LogRecordWriter = (record) => process.stdout.write(`${JSON.stringify(record)}\n`);

/**
 * The log record of one answered review: who asked for what, the decision and its rules, and for a failed look-up
 * the ImagegateError code (REGISTRY, AUTH, NOT_FOUND, …), so logs can be searched by it as metrics are labelled.
 */
export function admissionLogRecord(request: AdmissionRequest, hook: Hook, outcome: AdmissionOutcome, seconds: number): Record<string, unknown> {
  const object = request.object as { metadata?: { name?: string; generateName?: string } } | undefined;
  return {
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
    ...(outcome.code !== undefined ? { code: outcome.code } : {}),
    ms: Math.round(seconds * 1000),
    ...(outcome.response.status !== undefined ? { message: outcome.response.status.message } : {}),
  };
}

/** A failure no handler expected (a bug to report), with its code when it has one. */
export function unexpectedErrorRecord(msg: string, e: unknown): Record<string, unknown> {
  return { level: 'error', msg, ...(e instanceof ImagegateError ? { code: e.code } : {}), error: e instanceof Error ? e.message : String(e) };
}
