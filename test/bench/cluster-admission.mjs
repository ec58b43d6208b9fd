#!/usr/bin/env node
// Benchmark: pod creation through a real kube-apiserver (the one-node cluster of test/infra/cluster.sh), with
// imagegate's mutating and validating webhooks registered as the chart registers them, and again without them. Each
// pod names a protected (Vault-encrypted) image and a public one, so every creation costs the API server two webhook
// calls and imagegate its look-ups (cached after the first). Reports pod creations per second and the latency of one
// creation at p50/p90/p99 with and without imagegate; the difference is what imagegate adds. Pods are created for a
// node that does not exist, so nothing runs them: this measures admission, not the kubelet. Not a test: it asserts
// nothing.
//
//   npm run build && npm run bench:cluster          (root; builds nothing: run scripts/prepare-tests.sh first)
//   IMAGEGATE_BENCH_PODS=400 IMAGEGATE_BENCH_CONCURRENCY=8 npm run bench:cluster
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { parse } from 'yaml';
// Node >= 23.6 loads the TypeScript fixture builder directly (type stripping); it imports nothing from src/.
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.ts';
import { cli, repo } from './bench-lib.mjs';

const pods = Number(process.env.IMAGEGATE_BENCH_PODS ?? 400);
const concurrency = Number(process.env.IMAGEGATE_BENCH_CONCURRENCY ?? 8);
const clusterSh = path.join(repo, 'test/infra/cluster.sh');

const dir = await mkdtemp(path.join(tmpdir(), 'imagegate-bench-cluster-'));
const sh = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
};

console.error(`bench: starting the one-node cluster in ${dir} (about a minute)`);
sh(clusterSh, ['up', dir], { IMAGEGATE_CLUSTER_RUNTIME_MODEL: 'node', IMAGEGATE_CLUSTER_CHECK_LAYOUT: '', IMAGEGATE_CLUSTER_CONTAINERD: '1' });
try {
  const env = Object.fromEntries(
    (await readFile(path.join(dir, 'cluster.env'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const kubectl = (args, input) => {
    const r = spawnSync(env.KUBECTL, args, { input, encoding: 'utf8', env: { ...process.env, KUBECONFIG: env.KUBECONFIG, KUBECACHEDIR: env.KUBECACHEDIR } });
    if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed:\n${r.stderr}`);
    return r.stdout;
  };

  // A protected image, Vault-encrypted into the repository the policy protects, and a public plaintext one.
  const image = `${env.REPOSITORY}:bench`;
  const publicImage = `${env.PLAIN_REGISTRY}/public/tool:1`;
  const layout = path.join(dir, 'bench-image');
  await buildOciLayout(layout, { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(91, 2, 16 * 1024) }] }] });
  sh(process.execPath, [cli, 'encrypt', '-q', `oci:${layout}:v1`, `docker://${image}`, '-r', `vault:${env.KEY}`, '--ca-cert', env.REGISTRY_CA], {
    VAULT_ADDR: env.VAULT_ADDR,
    VAULT_TOKEN: env.VAULT_TOKEN,
  });
  sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${publicImage}`]);

  // The API server as kubectl reaches it: the admin's client certificate from the cluster's kubeconfig.
  const config = parse(await readFile(env.KUBECONFIG, 'utf8'));
  const cluster = config.clusters[0].cluster;
  const user = config.users[0].user;
  const agent = new Agent({
    connections: concurrency,
    connect: { ca: await readFile(cluster['certificate-authority']), cert: await readFile(user['client-certificate']), key: await readFile(user['client-key']) },
  });
  const podsUrl = new URL(`/api/v1/namespaces/${env.NAMESPACE}/pods`, cluster.server);

  let serial = 0;
  const createPod = async () => {
    const name = `bench-${process.pid}-${serial++}`;
    const body = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: {
        nodeName: 'no-such-node',
        serviceAccountName: env.SERVICE_ACCOUNT,
        containers: [
          { name: 'app', image },
          { name: 'public', image: publicImage },
        ],
      },
    });
    const started = performance.now();
    const res = await request(podsUrl, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body });
    const text = await res.body.text();
    const ms = performance.now() - started;
    if (res.statusCode !== 201) throw new Error(`creating pod ${name} answered HTTP ${res.statusCode}: ${text.slice(0, 400)}`);
    return ms;
  };

  const measure = async (label) => {
    for (let i = 0; i < 10; i++) await createPod(); // warm: connections, the webhook's look-up cache
    const latencies = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < pods) latencies.push(await createPod());
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    const row = { label, perSecond: pods / seconds, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
    console.error(`${label}: ${row.perSecond.toFixed(0)} pods/s, p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms`);
    kubectl(['-n', env.NAMESPACE, 'delete', 'pods', '--all', '--wait=false']);
    return row;
  };

  const withGate = await measure('with imagegate');
  const configurations = path.join(dir, 'webhook', 'webhook-configurations.json');
  kubectl(['delete', '-f', configurations]);
  // The API server drops a deleted webhook configuration within a second or two; wait for pods to pass unexamined.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const without = await measure('without webhooks');
  kubectl(['apply', '-f', configurations]);

  console.log(
    `\npod creations through kube-apiserver ${kubectl(['version', '-o', 'json']).match(/"gitVersion":\s*"([^"]+)"/g)?.pop()?.split('"')[3] ?? ''}, ${pods} pods, ${concurrency} at once; each pod: one protected image, one public; node ${process.version}`,
  );
  console.log('| webhooks | pods/s | p50 ms | p90 ms | p99 ms |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of [withGate, without]) console.log(`| ${r.label} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p90.toFixed(1)} | ${r.p99.toFixed(1)} |`);
  console.log(`| imagegate adds | | ${(withGate.p50 - without.p50).toFixed(1)} | ${(withGate.p90 - without.p90).toFixed(1)} | ${(withGate.p99 - without.p99).toFixed(1)} |`);
  await agent.close();
} finally {
  spawnSync(clusterSh, ['down', dir], { stdio: 'inherit' });
  await rm(dir, { recursive: true, force: true });
}
