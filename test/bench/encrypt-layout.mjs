#!/usr/bin/env node
// Benchmark: encrypt (and decrypt) an OCI layout of one layer, and of four, with imagegate and with skopeo, same
// input, same run. Reports wall time, throughput, CPU seconds and peak RSS (GNU time) for each. Not a test: it
// asserts nothing.
//
//   npm run build && npm run bench          (Node 24: it imports a .ts fixture builder)
//   IMAGEGATE_BENCH_BYTES=268435456 IMAGEGATE_BENCH_RUNS=3 npm run bench
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
// Node >= 23.6 loads the TypeScript fixture builder directly (type stripping); it imports nothing from src/.
import { writeBigLayerLayout } from '../support/image-builder.ts';
import { cli, printTable, record, requirePrerequisites, timed, writeKeyPair } from './bench-lib.mjs';

const bytes = Number(process.env.IMAGEGATE_BENCH_BYTES ?? 1024 ** 3);
const runs = Number(process.env.IMAGEGATE_BENCH_RUNS ?? 2);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench');
requirePrerequisites();

await mkdir(work, { recursive: true });
const { pub, priv } = await writeKeyPair(work);

/** The same number of bytes as one layer, and as four (one per core and more: what concurrency across layers gives). */
const shapes = [
  { layers: 1, name: '1 layer' },
  { layers: 4, name: '4 layers' },
];

const cases = [];
for (const shape of shapes) {
  const src = path.join(work, `src-${bytes}-${shape.layers}`);
  if (!existsSync(path.join(src, 'index.json'))) {
    console.error(`bench: writing a ${bytes}-byte layout of ${shape.layers} layer(s) to ${src}`);
    await rm(src, { recursive: true, force: true });
    await writeBigLayerLayout(src, bytes / shape.layers, { compression: 'gzip-stored', tag: 'bench', layers: shape.layers });
  }
  const out = (tool, op, i) => `${work}/${tool}-${op}-${shape.layers}-${i}`;
  cases.push(
    {
      tool: 'imagegate',
      op: `encrypt, ${shape.name}`,
      run: (i) => timed(process.execPath, [cli, 'encrypt', '-q', `oci:${src}:bench`, `oci:${out('ig', 'enc', i)}:bench`, '--recipient', `jwe:${pub}`]),
    },
    {
      tool: 'skopeo',
      op: `encrypt, ${shape.name}`,
      run: (i) => timed('skopeo', ['--insecure-policy', 'copy', '-q', '--encryption-key', `jwe:${pub}`, `oci:${src}:bench`, `oci:${out('sk', 'enc', i)}:bench`]),
    },
    {
      tool: 'imagegate',
      op: `decrypt, ${shape.name}`,
      run: (i) => timed(process.execPath, [cli, 'decrypt', '-q', `oci:${out('ig', 'enc', i)}:bench`, `oci:${out('ig', 'dec', i)}:bench`, '--key', priv]),
    },
    {
      tool: 'skopeo',
      op: `decrypt, ${shape.name}`,
      run: (i) => timed('skopeo', ['--insecure-policy', 'copy', '-q', '--decryption-key', priv, `oci:${out('sk', 'enc', i)}:bench`, `oci:${out('sk', 'dec', i)}:bench`]),
    },
  );
}

const outputs = async () => {
  for (const entry of await readdir(work)) if (/^(ig|sk)-(enc|dec)-/.test(entry)) await rm(path.join(work, entry), { recursive: true, force: true });
};

const results = [];
for (let i = 0; i < runs; i++) {
  await outputs();
  for (const c of cases) record(results, c, i, c.run(i), bytes);
  await outputs();
}

console.log(`\n${bytes} bytes (${(bytes / 1024 ** 3).toFixed(2)} GiB) pseudo-random per image, gzip level 0, as 1 layer and as 4; jwe (RSA-3072); ${runs} run(s) each; node ${process.version}`);
printTable(cases, results);
await writeFile(path.join(work, 'results.json'), JSON.stringify(results, null, 2));
