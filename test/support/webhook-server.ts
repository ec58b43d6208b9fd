/**
 * `imagegate webhook serve` as a child process on 127.0.0.1 with a throwaway TLS certificate, and AdmissionReviews
 * shaped like the API server's posted to it. The caller stops it (`stop()` in afterAll).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { CLI } from './imagegate.js';
import { makeTlsFiles } from './registry-server.js';
import { requireTool } from './tools.js';

export interface AdmissionAnswer {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  warnings?: string[];
  patchType?: string;
  patch?: string;
}

export interface WebhookServer {
  url: string;
  /** Posts a Pod AdmissionReview for `spec` to `/mutate` or `/validate` and returns its response. */
  reviewPod(hook: 'mutate' | 'validate', spec: Record<string, unknown>, options?: { namespace?: string; query?: string }): Promise<AdmissionAnswer>;
  /** The JSON Patch of a mutating answer (empty when there is none). */
  patchOf(answer: AdmissionAnswer): Array<{ op: string; path: string; value?: unknown }>;
  /** What the webhook logged so far. */
  log(): string;
  stop(): Promise<void>;
}

let uid = 0;

export async function startWebhook(dir: string, policy: string, args: readonly string[] = []): Promise<WebhookServer> {
  const tls = await makeTlsFiles(requireTool('openssl')!, path.join(dir, 'webhook-tls'));
  const policyFile = path.join(dir, 'policy.yaml');
  await writeFile(policyFile, policy);
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, 'webhook', 'serve', '--policy', policyFile, '--cert', tls.serverCertFile, '--key', tls.serverKeyFile, '--listen', '127.0.0.1:0', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let logs = '';
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      logs += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('https://'));
      if (line !== undefined) resolve(line.trim());
    });
    child.on('exit', (code) => reject(new Error(`webhook exited with ${code}: ${logs}`)));
  });
  const agent = new Agent({ connect: { ca: await readFile(tls.caFile) } });
  return {
    url,
    async reviewPod(hook, spec, options = {}) {
      const namespace = options.namespace ?? 'shop';
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: `uid-${++uid}`,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          name: 'app',
          namespace,
          operation: 'CREATE',
          userInfo: { username: 'someone' },
          object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'app', namespace }, spec },
          oldObject: null,
          dryRun: false,
        },
      };
      const res = await request(`${url}/${hook}${options.query ?? ''}`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify(review) });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`webhook answered ${res.statusCode}: ${text}`);
      return (JSON.parse(text) as { response: AdmissionAnswer }).response;
    },
    patchOf(answer) {
      return answer.patch === undefined ? [] : (JSON.parse(Buffer.from(answer.patch, 'base64').toString()) as Array<{ op: string; path: string; value?: unknown }>);
    },
    log: () => logs,
    async stop() {
      child.kill('SIGKILL');
      await agent.destroy();
    },
  };
}
