/**
 * `imagegate webhook review` as a platform repository's CI runs it (issue 15, CI and operations): the built CLI
 * against a real docker-registry holding an encrypted and a plaintext image. Manifests hold every kind of object, as
 * such a repository does; only Pods and workloads are judged, the rest counted. The exit code tells a denial (10)
 * from "could not decide" (11: the registry refused the connection or never answered), in-process and through a
 * running webhook alike.
 */
import net from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.js';
import { imagegate, imagegateOk } from '../support/imagegate.js';
import { freePort, startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir } from '../support/tools.js';
import { startWebhook, type WebhookServer } from '../support/webhook-server.js';

const ready = Boolean(requireTool('docker-registry')) && Boolean(requireTool('openssl'));

let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let policyFile: string;
let policyText: string;
let manifests: string;
/** A registry address that accepts connections and never answers. */
let blackHole: net.Server;
const holes: net.Socket[] = [];
let blackHoleHost: string;
/** A registry address nothing listens on. */
let closedHost: string;

function pod(name: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop }
spec: { containers: [{ name: app, image: "${image}" }] }
`;
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-review-');
  cleanup = dir.cleanup;
  work = dir.path;
  reg = (await startRegistry())!;
  const keys = await makeKeyPair(work, 'ec-p256', 'team');
  const plain = await buildOciLayout(path.join(work, 'plain'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(151, 1, 20 * 1024) }] }] });
  await imagegateOk(['encrypt', `oci:${plain.dir}:v1`, `docker://${reg.host}/shop/app:enc`, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '-q']);
  // A plain image has nothing to decrypt: decrypt copies it as it is.
  await imagegateOk(['decrypt', `oci:${plain.dir}:v1`, `docker://${reg.host}/shop/app:plain`, '--key', keys.privateKeyPath, '--insecure', '-q']);

  blackHole = net.createServer((socket) => holes.push(socket));
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
  blackHoleHost = `127.0.0.1:${(blackHole.address() as net.AddressInfo).port}`;
  closedHost = `127.0.0.1:${await freePort()}`;

  policyText = `apiVersion: imagegate.dev/v1alpha1
kind: AdmissionPolicy
mode: enforce
runtimeModel: pod
repositories:
  - match: "${reg.host}/shop/**"
    requireEncrypted: true
  - match: "${closedHost}/**"
    requireEncrypted: true
  - match: "${blackHoleHost}/**"
    requireEncrypted: true
`;
  policyFile = path.join(work, 'policy.yaml');
  await writeFile(policyFile, policyText);
  // What a platform repository's manifests/ holds: config, services, a List, workloads, several documents a file.
  manifests = path.join(work, 'app.yaml');
  await writeFile(
    manifests,
    `apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: shop }
data: { a: b }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { ports: [{ port: 80 }] }
---
apiVersion: v1
kind: List
items:
  - ${JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'encrypted', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: `${reg.host}/shop/app:enc` }] } })}
  - ${JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web', namespace: 'shop' } })}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: plaintext, namespace: shop }
spec:
  selector: { matchLabels: { app: plaintext } }
  template:
    metadata: { labels: { app: plaintext } }
    spec: { containers: [{ name: app, image: "${reg.host}/shop/app:plain" }] }
`,
  );
}, 120_000);

afterAll(async () => {
  for (const s of holes) s.destroy();
  await new Promise<void>((r) => (blackHole !== undefined ? blackHole.close(() => r()) : r()));
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('webhook review in CI', () => {
  it('judges Pods and workloads, expands kind: List, counts and skips the other kinds, and exits 10 for the denial', async () => {
    const r = await imagegate(['webhook', 'review', '--policy', policyFile, manifests, '--insecure']);
    expect(r.code, r.stderr).toBe(EXIT_CODES.FLAGGED);
    expect(r.stdout).toContain('allowed Pod shop/encrypted\n');
    expect(r.stdout).toMatch(/^denied {2}Deployment shop\/plaintext: imagegate denied this pod:/m);
    expect(r.stdout).not.toMatch(/ConfigMap|Service |ServiceAccount/);
    expect(r.stderr).toContain('reviewed 2 object(s): 1 allowed, 1 denied, 0 undecided; skipped 3 the webhook does not check (ConfigMap ×1, Service ×1, ServiceAccount ×1)');
  });

  it('exits 0 when every object is allowed, other kinds notwithstanding', async () => {
    const r = await imagegate(['webhook', 'review', '--policy', policyFile, '-', '--insecure'], {
      input: `apiVersion: v1\nkind: Namespace\nmetadata: { name: shop }\n---\n${pod('encrypted', `${reg.host}/shop/app:enc`)}`,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('allowed Pod shop/encrypted\n');
  });

  it('--json from standard input (-): one result per object, skipped ones too, under a schema version', async () => {
    const r = await imagegate(['webhook', 'review', '--policy', policyFile, '-', '--insecure', '--json'], { input: await readFile(manifests, 'utf8') });
    expect(r.code, r.stderr).toBe(EXIT_CODES.FLAGGED);
    const doc = JSON.parse(r.stdout) as { schemaVersion: number; kind: string; results: Array<Record<string, unknown>>; counts: Record<string, number> };
    expect(doc.schemaVersion).toBe(1);
    expect(doc.kind).toBe('WebhookReview');
    expect(doc.counts).toEqual({ allowed: 1, denied: 1, undecided: 0, skipped: 3 });
    expect(doc.results.map((x) => [x.source, x.kind, x.name, x.verdict])).toEqual([
      ['standard input (document 3, item 1)', 'Pod', 'encrypted', 'allowed'],
      ['standard input (document 4)', 'Deployment', 'plaintext', 'denied'],
      ['standard input (document 1)', 'ConfigMap', 'settings', 'skipped'],
      ['standard input (document 2)', 'Service', 'web', 'skipped'],
      ['standard input (document 3, item 2)', 'ServiceAccount', 'web', 'skipped'],
    ]);
    expect(doc.results[1]).toMatchObject({ apiVersion: 'apps/v1', namespace: 'shop', code: 403 });
    expect(doc.results[1]!.message).toMatch(/no layer is encrypted/);
  });

  it('exits 11 ("could not decide") when a registry refuses the connection or never answers, and 10 once anything is denied', async () => {
    const refused = await imagegate(['webhook', 'review', '--policy', policyFile, '-', '--insecure'], { input: pod('gone', `${closedHost}/shop/app:1`) });
    expect(refused.code, refused.stdout + refused.stderr).toBe(EXIT_CODES.UNDECIDED);
    expect(refused.stdout).toMatch(/^undecided Pod shop\/gone: imagegate could not check the images/m);

    const silent = await imagegate(['webhook', 'review', '--policy', policyFile, '-', '--insecure', '--budget-ms', '500', '--json'], { input: pod('slow', `${blackHoleHost}/shop/app:1`) });
    expect(silent.code, silent.stdout + silent.stderr).toBe(EXIT_CODES.UNDECIDED);
    const doc = JSON.parse(silent.stdout) as { results: Array<{ verdict: string; code: number }> };
    expect(doc.results).toMatchObject([{ verdict: 'undecided', code: 500 }]);

    const both = await imagegate(['webhook', 'review', '--policy', policyFile, '-', '--insecure'], { input: `${pod('gone', `${closedHost}/shop/app:1`)}---\n${pod('plain', `${reg.host}/shop/app:plain`)}` });
    expect(both.code, both.stderr).toBe(EXIT_CODES.FLAGGED);
    expect(both.stderr).toContain('1 denied, 1 undecided');
  });

  describe('through a running webhook (--url)', () => {
    let webhook: WebhookServer;
    beforeAll(async () => {
      await mkdir(path.join(work, 'served'), { recursive: true });
      webhook = await startWebhook(path.join(work, 'served'), policyText, ['--insecure', '--no-pull-secrets', '--negative-ttl', '0']);
    }, 60_000);
    afterAll(async () => webhook?.stop());

    it('tells a denial from "could not decide" by the same exit codes', async () => {
      const ca = path.join(work, 'served', 'webhook-tls', 'certs.d', 'ca.crt');
      const args = (input: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
        imagegate(['webhook', 'review', '--url', webhook.url, '--webhook-ca', ca, '-'], { input });
      const refused = await args(pod('gone', `${closedHost}/shop/app:1`));
      expect(refused.code, refused.stdout + refused.stderr).toBe(EXIT_CODES.UNDECIDED);
      const denied = await args(pod('plain', `${reg.host}/shop/app:plain`));
      expect(denied.code, denied.stdout + denied.stderr).toBe(EXIT_CODES.FLAGGED);
      const allowed = await args(pod('encrypted', `${reg.host}/shop/app:enc`));
      expect(allowed.code, allowed.stdout + allowed.stderr).toBe(0);
    });
  });
});
