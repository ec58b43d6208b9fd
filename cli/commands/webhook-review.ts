import type { Command } from 'commander';
import { admit } from '../../src/admission/admit.js';
import { admissionReviewRequest, objectLabel, objectName, reviewsFromManifests, reviewVerdict, type ManifestObjects, type ReviewVerdict, type SkippedObject } from '../../src/admission/manifest-review.js';
import type { JsonObject } from '../../src/image/validate.js';
import { ImageResolver } from '../../src/admission/resolver.js';
import type { AdmissionRequest, AdmissionResponse } from '../../src/admission/review.js';
import { describePodPatch } from '../../src/pod-model/describe-patch.js';
import type { JsonPatch } from '../../src/pod-model/json-patch.js';
import { ImagegateError, EXIT_CODES } from '../../src/errors.js';
import { loadPolicyFile } from '../../src/policy/load-policy.js';
import { parseCount } from '../../src/util/size.js';
import { loadUndici } from '../../src/util/load-undici.js';
import { readAll } from '../../src/util/streams.js';
import { readUserFile } from '../../src/util/user-file.js';
import { readCaCertificateFile } from '../../src/util/ca-certificate-file.js';
import { jsonDocument } from '../json-output.js';
import { info } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';

interface ReviewFlags extends TransferFlags {
  policy?: string;
  url?: string;
  webhookCa?: string;
  namespace?: string;
  mutate?: boolean;
  budgetMs: string;
  json?: boolean;
}

/**
 * `imagegate webhook review MANIFEST…`: what the webhook would answer for these objects, before a cluster sees them.
 * With --policy it decides in-process, with the same code and registry look-ups as `webhook serve`; with --url it
 * asks a running webhook, exactly as the API server would. Made for a platform repository's CI: every kind of object
 * may be in the files (those the webhook does not judge are counted and skipped), and the exit code tells "denied"
 * (fix the manifest) from "could not decide" (a registry that did not answer: try again).
 */
export function registerWebhookReview(webhook: Command): void {
  const review = webhook
    .command('review')
    .summary('ask what the webhook answers for Pods, Deployments, Jobs… in YAML files (a dry run; nothing is created)')
    .argument('<manifest...>', 'YAML files of Kubernetes objects (several documents per file, and kind: List, are fine; other kinds are skipped); - reads standard input')
    .option('--policy <file>', 'decide in-process with this AdmissionPolicy (registry look-ups use your credentials, not pull secrets)')
    .option('--url <url>', 'ask a running webhook instead, e.g. https://127.0.0.1:8443')
    .option('--webhook-ca <file>', "CA certificate (PEM) that signed the webhook's serving certificate (with --url)")
    .option('-n, --namespace <namespace>', 'namespace to review the objects in (default: their own, else "default")')
    .option('--mutate', 'ask the mutating hook (shows what it would pin and inject) instead of the validating one')
    .option('--budget-ms <ms>', 'time allowed for the registry look-ups (with --policy)', '10000')
    .option('--json', 'print one result per object as JSON (docs/json-output.md)')
    .addHelpText(
      'after',
      `\nExit codes: 0 every object allowed, ${EXIT_CODES.FLAGGED} at least one denied, ${EXIT_CODES.UNDECIDED} none denied but at least one could not be decided\n` +
        '(a registry look-up failed or timed out: worth a retry), otherwise as for other commands.',
    );
  addTransferOptions(review, false).action(async (files: string[], flags: ReviewFlags) => {
    if ((flags.policy === undefined) === (flags.url === undefined)) throw new ImagegateError('USAGE', 'give either --policy FILE (decide here) or --url URL (ask a running webhook)');
    const objects = await readManifests(files, flags);
    const decide = flags.url !== undefined ? await askWebhook(flags.url, flags) : await decideHere(flags.policy!, flags);
    const results: ReviewResult[] = [];
    for (const { where, request } of objects.reviews) {
      const res = await decide(request);
      const result: ReviewResult = { where, request, response: res, verdict: reviewVerdict(res) };
      results.push(result);
      if (flags.json !== true) process.stdout.write(formatResult(result));
    }
    const count = (v: ReviewVerdict): number => results.filter((r) => r.verdict === v).length;
    if (flags.json === true) {
      process.stdout.write(jsonDocument('WebhookReview', jsonReport(results, objects.skipped, { allowed: count('allowed'), denied: count('denied'), undecided: count('undecided') })));
    } else {
      info(`reviewed ${results.length} object(s): ${count('allowed')} allowed, ${count('denied')} denied, ${count('undecided')} undecided${skippedSummary(objects.skipped)}`);
    }
    // A denial is a finding whatever else happened; "could not decide" only when nothing was denied.
    if (count('denied') > 0) process.exitCode = EXIT_CODES.FLAGGED;
    else if (count('undecided') > 0) process.exitCode = EXIT_CODES.UNDECIDED;
  });
}

interface ReviewResult {
  where: string;
  request: AdmissionRequest;
  response: AdmissionResponse;
  verdict: ReviewVerdict;
}

/** Every object of every file, `-` being standard input (once: it can be read only once). */
async function readManifests(files: string[], flags: ReviewFlags): Promise<ManifestObjects> {
  const fromStdin = files.filter((f) => f === '-').length;
  if (fromStdin > 1) throw new ImagegateError('USAGE', 'give - (standard input) at most once');
  if (fromStdin === 1 && [flags.creds, flags.srcCreds, flags.destCreds].some((c) => c !== undefined && !c.includes(':'))) {
    throw new ImagegateError('USAGE', 'the manifests come from standard input (-), so the registry password cannot: give --creds USER:PASSWORD or --authfile FILE');
  }
  const all: ManifestObjects = { reviews: [], skipped: [] };
  for (const file of files) {
    const text = file === '-' ? (await readAll(process.stdin, MAX_MANIFEST_BYTES, 'the manifests on standard input')).toString('utf8') : await readUserFile(file, (reason) => `cannot read ${file} (${reason})`);
    const found = reviewsFromManifests(text, file === '-' ? 'standard input' : file, flags.namespace);
    all.reviews.push(...found.reviews);
    all.skipped.push(...found.skipped);
  }
  if (all.reviews.length === 0 && all.skipped.length === 0) throw new ImagegateError('USAGE', `${files.join(', ')}: no Kubernetes objects found; give the YAML files you would kubectl apply`);
  return all;
}

/** Manifests read from standard input are text a person or kustomize wrote: far below this. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

function formatResult({ request, response, verdict }: ReviewResult): string {
  // Continuation lines are indented, so each verdict starts at the margin.
  const message = verdict === 'allowed' ? '' : `: ${(response.status?.message ?? '(no message)').replace(/\n/g, '\n  ')}`;
  const word = verdict === 'undecided' ? 'undecided' : verdict.padEnd(7);
  let text = `${word} ${objectLabel(request)}${message}\n`;
  for (const w of response.warnings ?? []) text += `  warning: ${w}\n`;
  for (const change of describePatch(request, response)) text += `  ${change}\n`;
  return text;
}

function skippedSummary(skipped: SkippedObject[]): string {
  if (skipped.length === 0) return '';
  const byKind = new Map<string, number>();
  for (const s of skipped) byKind.set(s.kind, (byKind.get(s.kind) ?? 0) + 1);
  return `; skipped ${skipped.length} the webhook does not check (${[...byKind].map(([kind, n]) => `${kind} ×${n}`).join(', ')})`;
}

/** The --json document's fields (docs/json-output.md): one result per object, skipped ones included. */
function jsonReport(results: ReviewResult[], skipped: SkippedObject[], counts: Record<ReviewVerdict, number>): object {
  const reviewed = results.map(({ where, request, response, verdict }) => {
    const patch = response.patch !== undefined ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown[]) : undefined;
    return {
      source: where,
      apiVersion: request.kind.group === '' ? request.kind.version : `${request.kind.group}/${request.kind.version}`,
      kind: request.kind.kind,
      namespace: request.namespace,
      name: objectName(request.object?.metadata as JsonObject | undefined),
      verdict,
      ...(response.status !== undefined ? { code: response.status.code, message: response.status.message } : {}),
      warnings: response.warnings ?? [],
      ...(patch !== undefined ? { patch } : {}),
    };
  });
  const notChecked = skipped.map((s) => ({ source: s.where, apiVersion: s.apiVersion, kind: s.kind, ...(s.namespace !== undefined ? { namespace: s.namespace } : {}), name: s.name, verdict: 'skipped' }));
  return { results: [...reviewed, ...notChecked], counts: { ...counts, skipped: skipped.length } };
}

async function decideHere(policyFile: string, flags: ReviewFlags): Promise<(req: AdmissionRequest) => Promise<AdmissionResponse>> {
  const policy = await loadPolicyFile(policyFile);
  const transfer = await transferSettings({ ...flags, quiet: true }, 'webhook review');
  const resolver = new ImageResolver({ registry: transfer.source.registry ?? {}, cache: { maxEntries: 1000, ttlMs: 60_000, negativeTtlMs: 0 } });
  const budgetMs = parseCount(flags.budgetMs, '--budget-ms', 100, 600_000);
  return async (req) => (await admit(req, { policy: () => policy, resolve: (image, ctx) => resolver.resolve(image, ctx), budgetMs }, flags.mutate === true)).response;
}

async function askWebhook(url: string, flags: ReviewFlags): Promise<(req: AdmissionRequest) => Promise<AdmissionResponse>> {
  const ca = flags.webhookCa !== undefined ? await readCaCertificateFile(flags.webhookCa, '--webhook-ca') : undefined;
  const { Agent, request } = await loadUndici();
  const dispatcher = new Agent(ca !== undefined ? { connect: { ca } } : {});
  const endpoint = new URL(flags.mutate === true ? 'mutate' : 'validate', url.endsWith('/') ? url : `${url}/`);
  return async (req) => {
    let res;
    try {
      res = await request(endpoint, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(admissionReviewRequest(req)),
      });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      const hint = /certificate|self.signed/i.test(why) ? '; pass the CA that signed its certificate with --webhook-ca' : '';
      throw new ImagegateError('IO', `cannot reach the webhook at ${endpoint.href}: ${why}${hint}`);
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new ImagegateError('IO', `the webhook at ${endpoint.href} answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
    let body: { response?: AdmissionResponse };
    try {
      body = JSON.parse(text) as { response?: AdmissionResponse };
    } catch {
      body = {};
    }
    if (body.response === undefined) throw new ImagegateError('IO', `the webhook at ${endpoint.href} answered without an AdmissionReview response`);
    return body.response;
  };
}

/** The mutating hook's JSON patch, in words: which images it pins, what it injects. */
function describePatch(request: AdmissionRequest, res: AdmissionResponse): string[] {
  if (res.patch === undefined || request.object === undefined) return [];
  return describePodPatch(request.kind.kind, request.object, JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) as JsonPatch);
}
