#!/usr/bin/env node
// Benchmark: encrypt a 4-layer image and push it to a local docker-registry, and pull and decrypt it back, with
// imagegate and with skopeo (`copy --encryption-key jwe:…`), same input, same registry, same run. Reports wall
// time, throughput and peak RSS (GNU time's %M). Not a test: it asserts nothing.
//
//   npm run build && npm run bench:registry          (Node 24: it imports a .ts fixture builder)
//   IMAGEGATE_BENCH_LAYER_BYTES=67108864 IMAGEGATE_BENCH_RUNS=1 npm run bench:registry   for a quick run
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { benchImage, cli, printTable, record, requirePrerequisites, startBenchRegistry, timed, writeKeyPair } from './bench-lib.mjs';

const layerBytes = Number(process.env.IMAGEGATE_BENCH_LAYER_BYTES ?? 256 * 1024 ** 2);
const layers = Number(process.env.IMAGEGATE_BENCH_LAYERS ?? 4);
const runs = Number(process.env.IMAGEGATE_BENCH_RUNS ?? 3);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench-registry');
const bytes = layerBytes * layers;
requirePrerequisites([['docker-registry (apt-get install docker-registry)', spawnSync('docker-registry', ['--version']).status === 0]]);

await mkdir(work, { recursive: true });
const src = await benchImage(work, layers, layerBytes);
const { pub, priv } = await writeKeyPair(work);

const skopeoArgs = ['--insecure-policy', 'copy', '-q'];
const cases = [
  {
    tool: 'imagegate',
    op: 'encrypt + push',
    run: (reg, i) => timed(process.execPath, [cli, 'encrypt', '-q', `oci:${src}:bench`, `docker://${reg}/ig-${i}:enc`, '--recipient', `jwe:${pub}`, '--insecure']),
  },
  {
    tool: 'skopeo',
    op: 'encrypt + push',
    run: (reg, i) => timed('skopeo', [...skopeoArgs, '--dest-tls-verify=false', '--encryption-key', `jwe:${pub}`, `oci:${src}:bench`, `docker://${reg}/sk-${i}:enc`]),
  },
  {
    tool: 'imagegate',
    op: 'pull + decrypt',
    run: (reg, i) => timed(process.execPath, [cli, 'decrypt', '-q', `docker://${reg}/ig-${i}:enc`, `oci:${work}/ig-dec-${i}:bench`, '--key', priv, '--insecure']),
  },
  {
    tool: 'skopeo',
    op: 'pull + decrypt',
    run: (reg, i) => timed('skopeo', [...skopeoArgs, '--src-tls-verify=false', '--decryption-key', priv, `docker://${reg}/sk-${i}:enc`, `oci:${work}/sk-dec-${i}:bench`]),
  },
];

const results = [];
for (let i = 0; i < runs; i++) {
  // A fresh registry per run: nothing from an earlier run can be skipped or mounted.
  const reg = await startBenchRegistry(work);
  try {
    for (const c of cases) record(results, c, i, c.run(reg.host, i), bytes);
  } finally {
    await reg.stop();
    for (const dir of ['ig-dec', 'sk-dec']) await rm(path.join(work, `${dir}-${i}`), { recursive: true, force: true });
  }
}
await rm(path.join(work, 'registry-data'), { recursive: true, force: true });

console.log(`\nimage: ${layers} layers × ${layerBytes} bytes = ${(bytes / 1024 ** 3).toFixed(2)} GiB pseudo-random, gzip level 0; registry: docker-registry on 127.0.0.1 (plain HTTP); ${runs} run(s) each; node ${process.version}`);
printTable(cases, results);
await writeFile(path.join(work, 'results.json'), JSON.stringify(results, null, 2));
