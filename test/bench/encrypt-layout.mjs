#!/usr/bin/env node
// Benchmark: encrypt (and decrypt) a single-layer OCI layout with imagegate and with skopeo, same input, same run.
// Reports wall time, throughput and peak RSS (GNU time's %M) for each. Not a test: it asserts nothing.
//
//   npm run build && npm run bench          (Node 24: it imports a .ts fixture builder)
//   IMAGEGATE_BENCH_BYTES=268435456 IMAGEGATE_BENCH_RUNS=3 npm run bench
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
// Node >= 23.6 loads the TypeScript fixture builder directly (type stripping); it imports nothing from src/.
import { writeBigLayerLayout } from '../support/image-builder.ts';
import { cli, printTable, record, requirePrerequisites, timed, writeKeyPair } from './bench-lib.mjs';

const bytes = Number(process.env.IMAGEGATE_BENCH_BYTES ?? 1024 ** 3);
const runs = Number(process.env.IMAGEGATE_BENCH_RUNS ?? 2);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench');
requirePrerequisites();

await mkdir(work, { recursive: true });
const src = path.join(work, `src-${bytes}`);
if (!existsSync(path.join(src, 'index.json'))) {
  console.error(`bench: writing a ${bytes}-byte single-layer layout to ${src}`);
  await rm(src, { recursive: true, force: true });
  await writeBigLayerLayout(src, bytes, { compression: 'gzip-stored', tag: 'bench' });
}
const { pub, priv } = await writeKeyPair(work);

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
    record(results, c, i, c.run(i), bytes);
  }
  for (const dir of ['ig-enc', 'sk-enc', 'ig-dec', 'sk-dec']) await rm(path.join(work, `${dir}-${i}`), { recursive: true, force: true });
}

console.log(`\nlayer: ${bytes} bytes (${(bytes / 1024 ** 3).toFixed(2)} GiB) pseudo-random, gzip level 0, one layer; ${runs} run(s) each; node ${process.version}`);
printTable(cases, results);
await writeFile(path.join(work, 'results.json'), JSON.stringify(results, null, 2));
