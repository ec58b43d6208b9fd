import type { Command } from 'commander';
import { Agent, request } from 'undici';
import { admit } from '../../src/admission/admit.js';
import { admissionReviewRequest, objectLabel, reviewsFromManifests } from '../../src/admission/manifest-review.js';
import { ImageResolver } from '../../src/admission/resolver.js';
import type { AdmissionRequest, AdmissionResponse } from '../../src/admission/review.js';
import { ImagegateError, VERDICT_EXIT_CODES } from '../../src/errors.js';
import { loadPolicyFile } from '../../src/policy/load-policy.js';
import { parseCount } from '../../src/util/size.js';
import { readUserFile } from '../../src/util/user-file.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';

interface ReviewFlags extends TransferFlags {
  policy?: string;
  url?: string;
  webhookCa?: string;
  namespace?: string;
  mutate?: boolean;
  budgetMs: string;
}

/**
 * `imagegate webhook review MANIFEST…`: what the webhook would answer for these objects, before a cluster sees them.
 * With --policy it decides in-process, with the same code and registry look-ups as `webhook serve`; with --url it
 * asks a running webhook, exactly as the API server would.
 */
export function registerWebhookReview(webhook: Command): void {
  const review = webhook
    .command('review')
    .summary('ask what the webhook answers for Pods, Deployments, Jobs… in YAML files (a dry run; nothing is created)')
    .argument('<manifest...>', 'YAML files of Kubernetes objects (several documents per file are fine)')
    .option('--policy <file>', 'decide in-process with this AdmissionPolicy (registry look-ups use your credentials, not pull secrets)')
    .option('--url <url>', 'ask a running webhook instead, e.g. https://127.0.0.1:8443')
    .option('--webhook-ca <file>', "CA certificate (PEM) that signed the webhook's serving certificate (with --url)")
    .option('-n, --namespace <namespace>', 'namespace to review the objects in (default: their own, else "default")')
    .option('--mutate', 'ask the mutating hook (shows what it would pin and inject) instead of the validating one')
    .option('--budget-ms <ms>', 'time allowed for the registry look-ups (with --policy)', '10000')
    .addHelpText('after', '\nExit codes: 0 every object allowed, 10 at least one denied, otherwise as for other commands.');
  addTransferOptions(review, false).action(async (files: string[], flags: ReviewFlags) => {
    if ((flags.policy === undefined) === (flags.url === undefined)) throw new ImagegateError('USAGE', 'give either --policy FILE (decide here) or --url URL (ask a running webhook)');
    const requests: AdmissionRequest[] = [];
    for (const file of files) requests.push(...reviewsFromManifests(await readUserFile(file, (reason) => `cannot read ${file} (${reason})`), file, flags.namespace));
    const decide = flags.url !== undefined ? await askWebhook(flags.url, flags) : await decideHere(flags.policy!, flags);
    let denied = 0;
    for (const req of requests) {
      const res = await decide(req);
      if (!res.allowed) denied++;
      // Continuation lines are indented, so each verdict starts at the margin.
      const message = res.allowed ? '' : `: ${(res.status?.message ?? '(no message)').replace(/\n/g, '\n  ')}`;
      process.stdout.write(`${res.allowed ? 'allowed' : 'denied '} ${objectLabel(req)}${message}\n`);
      for (const w of res.warnings ?? []) process.stdout.write(`  warning: ${w}\n`);
      for (const change of describePatch(res)) process.stdout.write(`  ${change}\n`);
    }
    if (denied > 0) process.exitCode = VERDICT_EXIT_CODES.FLAGGED;
  });
}

async function decideHere(policyFile: string, flags: ReviewFlags): Promise<(req: AdmissionRequest) => Promise<AdmissionResponse>> {
  const policy = await loadPolicyFile(policyFile);
  const transfer = await transferSettings({ ...flags, quiet: true }, 'webhook review');
  const resolver = new ImageResolver({ registry: transfer.source.registry ?? {}, cache: { maxEntries: 1000, ttlMs: 60_000, negativeTtlMs: 0 } });
  const budgetMs = parseCount(flags.budgetMs, '--budget-ms', 100, 600_000);
  return async (req) => (await admit(req, { policy: () => policy, resolve: (image, ctx) => resolver.resolve(image, ctx), budgetMs }, flags.mutate === true)).response;
}

async function askWebhook(url: string, flags: ReviewFlags): Promise<(req: AdmissionRequest) => Promise<AdmissionResponse>> {
  const ca = flags.webhookCa !== undefined ? await readUserFile(flags.webhookCa, (reason) => `cannot read ${flags.webhookCa} (${reason})`) : undefined;
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
function describePatch(res: AdmissionResponse): string[] {
  if (res.patch === undefined) return [];
  const ops = JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) as Array<{ op: string; path: string; value?: unknown }>;
  return ops.map((op) => {
    if (op.path.endsWith('/image') && typeof op.value === 'string') return `pins ${op.path}: ${op.value}`;
    const name = typeof op.value === 'object' && op.value !== null && 'name' in op.value ? ` ${String((op.value as { name: unknown }).name)}` : '';
    return `${op.op} ${op.path}${name}`;
  });
}
