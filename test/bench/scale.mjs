// npm run bench:scale [-- --images N --repositories R --rtt-ms MS]
//
// After a breach, `imagegate audit` runs over a whole registry and a key rotation rewraps all of it. This builds such a
// registry in docker-registry on 127.0.0.1 (default 10,000 images in 100 repositories: 40% Vault-wrapped, 30% jwe,
// 30% plaintext; in each repository one real image of each kind encrypted by imagegate, and distinct copies of it
// whose manifests differ by an annotation), then times audit and a rewrap of everything after a Transit rotation,
// once on loopback and once through a proxy that delays every TCP segment by half the round trip (default 20 ms
// round trip), as a registry in another region would. It counts registry requests, TCP connections and Transit
// calls through counting proxies, and peak RSS with GNU time.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { cli, repo, requirePrerequisites, startBenchRegistry, writeKeyPair } from './bench-lib.mjs';
import { startCountingProxy } from '../support/counting-proxy.ts';
import { buildOciLayout, randomLayerFiles } from '../support/image-builder.ts';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const IMAGES = option('images', 10_000);
const REPOSITORIES = option('repositories', 100);
const RTT_MS = option('rtt-ms', 20);
const bao = spawnSync(path.join(repo, 'test/infra/build-openbao.sh'), ['--path'], { encoding: 'utf8' }).stdout.trim();
requirePrerequisites([[`OpenBao at ${bao} (test/infra/build-openbao.sh)`, spawnSync(bao, ['version']).status === 0]]);

/** A TCP proxy that delays every segment, each way, by `oneWayMs`: a far registry's round trips, on loopback. */
async function delayProxy(upstreamPort, oneWayMs) {
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    const delayed = (from, to) => {
      // Segments leave in order, each `oneWayMs` after it arrived.
      let last = 0;
      from.on('data', (chunk) => {
        const due = Math.max(Date.now() + oneWayMs, last);
        last = due;
        setTimeout(() => to.write(chunk), due - Date.now());
      });
      from.on('end', () => setTimeout(() => to.end(), Math.max(0, last - Date.now()) + oneWayMs));
      from.on('error', () => to.destroy());
    };
    // The TCP handshake costs a round trip too.
    client.pause();
    setTimeout(() => {
      client.resume();
      delayed(client, upstream);
      delayed(upstream, client);
    }, 2 * oneWayMs);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

async function startBao(work) {
  const port = (await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); }));
  const token = 'bench-root';
  const child = spawn(bao, ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, `-dev-root-token-id=${token}`], { stdio: 'ignore', env: { ...process.env, HOME: work } });
  const address = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${address}/v1/sys/health`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async (method, p, body) => {
    const r = await fetch(`${address}/v1/${p}`, { method, headers: { 'x-vault-token': token, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  };
  await api('POST', 'sys/mounts/transit', { type: 'transit' });
  await api('POST', 'transit/keys/bench', { derived: true });
  return { address, token, api, stop: () => child.kill('SIGKILL') };
}

/**
 * Runs a command without blocking this process, whose proxies must keep answering it; returns its exit code and
 * output. (spawnSync would freeze the proxies the command talks to.)
 */
function spawnAsync(cmd, argv, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-65536)));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function run(argv, env = {}) {
  const r = await spawnAsync(process.execPath, [cli, ...argv], env);
  if (r.status !== 0 && r.status !== 10) throw new Error(`imagegate ${argv.slice(0, 3).join(' ')} exited ${r.status}:\n${r.stderr.slice(-2000)}`);
  return r;
}

/** GNU time around an imagegate command: seconds and peak RSS, as bench-lib's timed() but without blocking. */
async function timedImagegate(argv) {
  const r = await spawnAsync('/usr/bin/time', ['-f', 'bench-time %e %M', process.execPath, cli, ...argv]);
  const m = /bench-time ([\d.]+) (\d+)/.exec(r.stderr);
  if ((r.status !== 0 && r.status !== 10) || m === null) throw new Error(`imagegate ${argv[0]} exited ${r.status}:\n${r.stderr.slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024 };
}

/** PUTs a manifest (bytes) under `reference`; the blobs must be in the repository. */
async function putManifest(registry, repository, reference, bytes, mediaType) {
  const res = await request(`http://${registry}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`PUT ${repository}:${reference}: ${res.statusCode}`);
}

async function getManifest(registry, repository, tag) {
  const res = await request(`http://${registry}/v2/${repository}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return { bytes: Buffer.from(await res.body.arrayBuffer()), mediaType: res.headers['content-type'] };
}

/** Runs `task` over `items` with `concurrency` at once. */
async function pool(items, concurrency, task) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await task(items[next++]);
  }));
}

const work = await mkdtemp(path.join(os.tmpdir(), 'imagegate-bench-scale-'));
const registry = await startBenchRegistry(work);
const vault = await startBao(work);
const keys = await writeKeyPair(work);
try {
  const registryCount = await startCountingProxy(`http://${registry.host}`);
  const far = await delayProxy(Number(registryCount.host.split(':')[1]), RTT_MS / 2);
  const vaultCount = await startCountingProxy(vault.address);
  const vaultEnv = { VAULT_ADDR: `http://${vaultCount.host}`, VAULT_TOKEN: vault.token };

  // The registry: per repository one real image of each kind, then copies up to the share of each kind.
  console.error(`bench: building ${IMAGES} images in ${REPOSITORIES} repositories in ${registry.host}`);
  const src = await buildOciLayout(path.join(work, 'src'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(901, 1, 4096) }, { files: randomLayerFiles(902, 1, 4096) }] }] });
  const perRepo = Math.ceil(IMAGES / REPOSITORIES);
  const kinds = [['vault', 0.4], ['jwe', 0.3], ['plain', 0.3]];
  const repos = Array.from({ length: REPOSITORIES }, (_, i) => `team-${String(i).padStart(3, '0')}/app`);
  const started = Date.now();
  await pool(repos, 4, async (repo) => {
    const to = (tag) => `docker://${registry.host}/${repo}:${tag}`;
    await run(['encrypt', `oci:${src.dir}:v1`, to('vault-0'), '-r', 'vault:bench', '--insecure', '-q'], vaultEnv);
    await run(['encrypt', `oci:${src.dir}:v1`, to('jwe-0'), '-r', `jwe:${keys.pub}`, '--insecure', '-q']);
    await spawnAsync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${src.dir}:v1`, to('plain-0')]);
    for (const [kind, share] of kinds) {
      const base = await getManifest(registry.host, repo, `${kind}-0`);
      const json = JSON.parse(base.bytes.toString());
      const copies = Array.from({ length: Math.round(perRepo * share) - 1 }, (_, i) => i + 1);
      await pool(copies, 8, async (i) => {
        const bytes = Buffer.from(JSON.stringify({ ...json, annotations: { ...(json.annotations ?? {}), 'dev.imagegate.bench.copy': String(i) } }));
        await putManifest(registry.host, repo, `${kind}-${i}`, bytes, base.mediaType);
      });
    }
  });
  const total = repos.length * kinds.reduce((n, [, share]) => n + Math.round(perRepo * share), 0);
  console.error(`bench: ${total} images built in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const rows = [];
  const measure = async (what, where, host, argv) => {
    registryCount.reset();
    vaultCount.reset();
    const r = await timedImagegate(argv(host));
    const transit = vaultCount.requests.filter((req) => req.includes(' /v1/transit/')).length;
    const requests = registryCount.requests.length;
    rows.push({ what, where, seconds: r.seconds, rssMiB: r.rssMiB, requests, connections: registryCount.connections, transit });
    console.error(`bench: ${what} ${where}: ${r.seconds.toFixed(1)} s, ${requests} registry requests, ${transit} Transit calls, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
  };
  process.env.VAULT_ADDR = vaultEnv.VAULT_ADDR;
  process.env.VAULT_TOKEN = vaultEnv.VAULT_TOKEN;
  const auditArgs = (host) => ['audit', host, '--insecure-registry', host, '--json'];
  const rewrapArgs = (host) => ['rewrap', ...repos.map((r) => `docker://${host}/${r}`), '--insecure-registry', host];
  await measure('audit', 'loopback', registryCount.host, auditArgs);
  await measure('audit', `${RTT_MS} ms round trip`, far.host, auditArgs);
  await vault.api('POST', 'transit/keys/bench/rotate', {});
  await measure('rewrap after rotation', 'loopback', registryCount.host, rewrapArgs);
  await vault.api('POST', 'transit/keys/bench/rotate', {});
  await measure('rewrap after rotation', `${RTT_MS} ms round trip`, far.host, rewrapArgs);

  console.log(`\n${total} images in ${REPOSITORIES} repositories (40% Vault, 30% jwe, 30% plaintext), docker-registry on 127.0.0.1`);
  console.log('| run | where | seconds | per image ms | registry requests (per image) | TCP connections | Transit calls (per Vault image) | peak RSS MiB |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const vaultImages = repos.length * Math.round(perRepo * 0.4);
  for (const r of rows) {
    console.log(`| ${r.what} | ${r.where} | ${r.seconds.toFixed(1)} | ${((r.seconds * 1000) / total).toFixed(1)} | ${r.requests} (${(r.requests / total).toFixed(2)}) | ${r.connections} | ${r.transit} (${(r.transit / vaultImages).toFixed(2)}) | ${r.rssMiB.toFixed(0)} |`);
  }
  await far.close();
  await registryCount.close();
  await vaultCount.close();
} finally {
  vault.stop();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
