#!/usr/bin/env node
// Benchmark: encrypt (and decrypt) a single-layer OCI layout with imagegate and with skopeo, same input, same run.
// Reports wall time, throughput and peak RSS (GNU time's %M) for each. Not a test: it asserts nothing.
//
//   npm run build && npm run bench          (Node 24: it imports a .ts fixture builder)
//   IMAGEGATE_BENCH_BYTES=268435456 IMAGEGATE_BENCH_RUNS=3 npm run bench
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Node >= 23.6 loads the TypeScript fixture builder directly (type stripping); it imports nothing from src/.
import { writeBigLayerLayout } from '../support/image-builder.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'dist/cli/imagegate.js');
const bytes = Number(process.env.IMAGEGATE_BENCH_BYTES ?? 1024 ** 3);
const runs = Number(process.env.IMAGEGATE_BENCH_RUNS ?? 2);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench');
const TIME = '/usr/bin/time';

for (const [what, ok] of [
  [`${cli} (run npm run build)`, existsSync(cli)],
  ['GNU time at /usr/bin/time (apt-get install time)', existsSync(TIME)],
  ['skopeo (apt-get install skopeo)', spawnSync('skopeo', ['--version']).status === 0],
]) {
  if (!ok) {
    console.error(`bench: missing ${what}`);
    process.exit(2);
  }
}

await mkdir(work, { recursive: true });
const src = path.join(work, `src-${bytes}`);
if (!existsSync(path.join(src, 'index.json'))) {
  console.error(`bench: writing a ${bytes}-byte single-layer layout to ${src}`);
  await rm(src, { recursive: true, force: true });
  await writeBigLayerLayout(src, bytes, { compression: 'gzip-stored', tag: 'bench' });
}
const keys = generateKeyPairSync('rsa', { modulusLength: 3072 });
const pub = path.join(work, 'bench.pub.pem');
const priv = path.join(work, 'bench.pem');
await writeFile(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
await writeFile(priv, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

/** Runs a command under GNU time; returns seconds and peak RSS in MiB. */
function timed(cmd, args) {
  const r = spawnSync(TIME, ['-f', '%e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = r.stderr.trim().split('\n');
  const [secs, kib] = lines[lines.length - 1].split(' ').map(Number);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return { seconds: secs, rssMiB: kib / 1024 };
}

const cases = [
  {
    tool: 'imagegate',
    op: 'encrypt',
    run: (i) => timed(process.execPath, [cli, 'encrypt', '-q', `oci:${src}:bench`, `oci:${work}/ig-enc-${i}:bench`, '--recipient', `jwe:${pub}`]),
  },
  {
    tool: 'skopeo',
    op: 'encrypt',
    run: (i) => timed('skopeo', ['--insecure-policy', 'copy', '-q', '--encryption-key', `jwe:${pub}`, `oci:${src}:bench`, `oci:${work}/sk-enc-${i}:bench`]),
  },
  {
    tool: 'imagegate',
    op: 'decrypt',
    run: (i) => timed(process.execPath, [cli, 'decrypt', '-q', `oci:${work}/ig-enc-${i}:bench`, `oci:${work}/ig-dec-${i}:bench`, '--key', priv]),
  },
  {
    tool: 'skopeo',
    op: 'decrypt',
    run: (i) => timed('skopeo', ['--insecure-policy', 'copy', '-q', '--decryption-key', priv, `oci:${work}/sk-enc-${i}:bench`, `oci:${work}/sk-dec-${i}:bench`]),
  },
];

const results = [];
for (let i = 0; i < runs; i++) {
  for (const dir of ['ig-enc', 'sk-enc', 'ig-dec', 'sk-dec']) await rm(path.join(work, `${dir}-${i}`), { recursive: true, force: true });
  for (const c of cases) {
    const r = c.run(i);
    results.push({ tool: c.tool, op: c.op, run: i, ...r, MBps: bytes / 1e6 / r.seconds });
    console.error(`run ${i}: ${c.tool} ${c.op}: ${r.seconds.toFixed(2)} s, ${(bytes / 1e6 / r.seconds).toFixed(0)} MB/s, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
  }
  for (const dir of ['ig-enc', 'sk-enc', 'ig-dec', 'sk-dec']) await rm(path.join(work, `${dir}-${i}`), { recursive: true, force: true });
}

console.log(`\nlayer: ${bytes} bytes (${(bytes / 1024 ** 3).toFixed(2)} GiB) pseudo-random, gzip level 0, one layer; ${runs} run(s) each; node ${process.version}`);
console.log('| tool | op | best s | best MB/s | median s | peak RSS MiB (max) |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const c of cases) {
  const rs = results.filter((r) => r.tool === c.tool && r.op === c.op).sort((a, b) => a.seconds - b.seconds);
  const median = rs[Math.floor(rs.length / 2)].seconds;
  const rss = Math.max(...rs.map((r) => r.rssMiB));
  console.log(`| ${c.tool} | ${c.op} | ${rs[0].seconds.toFixed(2)} | ${rs[0].MBps.toFixed(0)} | ${median.toFixed(2)} | ${rss.toFixed(0)} |`);
}
await writeFile(path.join(work, 'results.json'), JSON.stringify(results, null, 2));
