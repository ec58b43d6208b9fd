// Shared by the benchmark scripts: tool checks, key pairs, GNU time runs and the results table.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
// Node >= 23.6 loads the TypeScript fixture builder directly (type stripping); it imports nothing from src/.
import { writeBigLayerLayout } from '../support/image-builder.ts';
import { rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cli = path.join(repo, 'dist/cli/imagegate.js');
const TIME = '/usr/bin/time';

/** Exits with a message naming the first missing prerequisite; `extra` is [what, present] pairs. */
export function requirePrerequisites(extra = []) {
  for (const [what, ok] of [
    [`${cli} (run npm run build)`, existsSync(cli)],
    ['GNU time at /usr/bin/time (apt-get install time)', existsSync(TIME)],
    ['skopeo (apt-get install skopeo)', spawnSync('skopeo', ['--version']).status === 0],
    ...extra,
  ]) {
    if (!ok) {
      console.error(`bench: missing ${what}`);
      process.exit(2);
    }
  }
}

/** An RSA 3072 key pair in `dir`, as the benchmarks' recipient. */
export async function writeKeyPair(dir) {
  const keys = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const pub = path.join(dir, 'bench.pub.pem');
  const priv = path.join(dir, 'bench.pem');
  await writeFile(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(priv, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { pub, priv };
}

/** Runs a command under GNU time; returns wall seconds, CPU seconds (user + system, all threads) and peak RSS in MiB. */
export function timed(cmd, args) {
  const r = spawnSync(TIME, ['-f', '%e %U %S %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = r.stderr.trim().split('\n');
  const [secs, user, sys, kib] = lines[lines.length - 1].split(' ').map(Number);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return { seconds: secs, cpuSeconds: user + sys, rssMiB: kib / 1024 };
}

/** Prints one run's line to stderr and keeps it. */
export function record(results, c, run, r, bytes) {
  results.push({ tool: c.tool, op: c.op, run, ...r, MBps: bytes / 1e6 / r.seconds });
  console.error(`run ${run}: ${c.tool} ${c.op}: ${r.seconds.toFixed(2)} s, ${(bytes / 1e6 / r.seconds).toFixed(0)} MB/s, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
}

/**
 * The Markdown table the README quotes: best and median time, best throughput, CPU seconds of the best run, worst
 * peak RSS per case, and for imagegate how many times faster than the reference tool's best on the same case.
 */
export function printTable(cases, results) {
  console.log('| tool | op | best s | best MB/s | median s | CPU s | peak RSS MiB (max) | speed-up |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const best = (c) => results.filter((r) => r.tool === c.tool && r.op === c.op).sort((a, b) => a.seconds - b.seconds);
  for (const c of cases) {
    const rs = best(c);
    const median = rs[Math.floor(rs.length / 2)].seconds;
    const rss = Math.max(...rs.map((r) => r.rssMiB));
    // The reference tool's case for the same op, or its only case (umoci's plaintext unpack).
    const others = cases.filter((o) => !o.tool.startsWith('imagegate'));
    const reference = c.tool.startsWith('imagegate') ? (others.find((o) => o.op === c.op) ?? (others.length === 1 ? others[0] : undefined)) : undefined;
    const ratio = reference !== undefined ? `${(best(reference)[0].seconds / rs[0].seconds).toFixed(2)}× ${reference.tool}` : '';
    console.log(
      `| ${c.tool} | ${c.op} | ${rs[0].seconds.toFixed(2)} | ${rs[0].MBps.toFixed(0)} | ${median.toFixed(2)} | ${rs[0].cpuSeconds.toFixed(2)} | ${rss.toFixed(0)} | ${ratio} |`,
    );
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A plain-HTTP docker-registry on 127.0.0.1 with its own config (never the package default) and empty storage. */
export async function startBenchRegistry(work) {
  const port = await freePort();
  const data = path.join(work, 'registry-data');
  await rm(data, { recursive: true, force: true });
  const config = path.join(work, 'registry.yml');
  await writeFile(
    config,
    `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage:\n  filesystem: { rootdirectory: ${data} }\n  delete: { enabled: true }\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: imagegate-bench\n`,
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/v2/`).then(() => true, () => false);
    if (up) return { host: `127.0.0.1:${port}`, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('docker-registry did not start');
}

/** An OCI layout (tag `bench`) of `layers` pseudo-random layers of `layerBytes` each, gzip level 0, written once. */
export async function benchImage(work, layers, layerBytes) {
  const src = path.join(work, `src-${layers}x${layerBytes}`);
  if (!existsSync(path.join(src, 'index.json'))) {
    console.error(`bench: writing a ${layers}-layer image of ${layerBytes} bytes per layer to ${src}`);
    await rm(src, { recursive: true, force: true });
    await writeBigLayerLayout(src, layerBytes, { compression: 'gzip-stored', tag: 'bench', layers });
  }
  return src;
}
