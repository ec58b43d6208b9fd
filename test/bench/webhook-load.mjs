#!/usr/bin/env node
// Benchmark: the admission webhook under load (autocannon), answering a validating AdmissionReview for a pod with
// three containers (two protected images, one public), with a warm image cache and with every request going to the
// registry (cache TTL 0). Reports requests/s and p50/p90/p99 latency. Not a test: it asserts nothing.
//
//   npm run build && npm run bench:webhook          (IMAGEGATE_BENCH_SECONDS=10 IMAGEGATE_BENCH_CONNECTIONS=20)
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.ts';
import { cli, freePort, requirePrerequisites, startBenchRegistry, writeKeyPair } from './bench-lib.mjs';

const seconds = Number(process.env.IMAGEGATE_BENCH_SECONDS ?? 10);
const connections = Number(process.env.IMAGEGATE_BENCH_CONNECTIONS ?? 20);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench-webhook');
requirePrerequisites([
  ['docker-registry (apt-get install docker-registry)', spawnSync('docker-registry', ['--version']).status === 0],
  ['openssl (apt-get install openssl)', spawnSync('openssl', ['version']).status === 0],
]);
await mkdir(work, { recursive: true });

const reg = await startBenchRegistry(work);
const webhooks = [];
try {
  // Images: one encrypted (jwe) in a protected repository, and a public plain one.
  const { pub } = await writeKeyPair(work);
  const layout = await buildOciLayout(path.join(work, 'image'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(81, 2, 64 * 1024) }, { files: randomLayerFiles(82, 1, 32 * 1024) }] }] });
  const run = (args) => {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`imagegate ${args.join(' ')}: ${r.stderr}`);
  };
  run(['encrypt', `oci:${layout.dir}:v1`, `docker://${reg.host}/prod/app:1`, '-r', `jwe:${pub}`, '--insecure', '-q']);
  run(['encrypt', `oci:${layout.dir}:v1`, `docker://${reg.host}/prod/worker:1`, '-r', `jwe:${pub}`, '--insecure', '-q']);
  const sk = spawnSync('skopeo', ['--insecure-policy', 'copy', '-q', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${reg.host}/public/tools:1`]);
  if (sk.status !== 0) throw new Error(`skopeo: ${sk.stderr}`);

  const policy = path.join(work, 'policy.yaml');
  await writeFile(policy, `apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nrepositories:\n  - match: "${reg.host}/prod/**"\n`);
  const cert = path.join(work, 'tls.crt');
  const key = path.join(work, 'tls.key');
  const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
  if (ssl.status !== 0) throw new Error(`openssl: ${ssl.stderr}`);

  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'bench',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'shop',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web' },
        spec: {
          containers: [
            { name: 'web', image: `${reg.host}/prod/app:1` },
            { name: 'worker', image: `${reg.host}/prod/worker:1` },
            { name: 'tools', image: `${reg.host}/public/tools:1` },
          ],
        },
      },
    },
  });

  const results = [];
  for (const [label, ttl] of [['warm cache', '300'], ['cold registry look-ups (cache TTL 0)', '0']]) {
    const port = await freePort();
    const child = spawn(process.execPath, [cli, 'webhook', 'serve', '--policy', policy, '--cert', cert, '--key', key, '--listen', `127.0.0.1:${port}`, '--insecure', '--cache-ttl', ttl, '--negative-ttl', '0'], { stdio: ['ignore', 'ignore', 'inherit'] });
    webhooks.push(child);
    const url = `https://127.0.0.1:${port}`;
    const agent = new Agent({ connect: { ca: await readFile(cert) } });
    for (let i = 0; i < 100; i++) {
      const ok = await request(`${url}/readyz`, { dispatcher: agent }).then((r) => r.body.dump().then(() => r.statusCode === 200), () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // One request first: it must be an answer, not an error, or the numbers mean nothing.
    const first = await request(`${url}/validate`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body });
    const answer = JSON.parse(await first.body.text());
    if (answer.response?.allowed !== true) throw new Error(`the webhook did not allow the bench pod: ${JSON.stringify(answer)}`);
    await agent.close();

    const r = await autocannon({
      url: `${url}/validate`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections,
      duration: seconds,
      tlsOptions: { ca: await readFile(cert) },
    });
    results.push({ label, rps: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, errors: r.errors + r.non2xx, total: r.requests.total });
    console.error(`${label}: ${r.requests.average.toFixed(0)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, ${r.errors + r.non2xx} errors`);
    child.kill('SIGTERM');
  }
  console.log(`\npod with 3 containers (2 protected, encrypted; 1 public); ${connections} connections, ${seconds} s each; registry: docker-registry on 127.0.0.1; node ${process.version}`);
  console.log('| case | req/s | p50 ms | p90 ms | p99 ms | requests | errors |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) console.log(`| ${r.label} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p90} | ${r.p99} | ${r.total} | ${r.errors} |`);
} finally {
  for (const w of webhooks) w.kill('SIGTERM');
  await reg.stop();
}
