#!/usr/bin/env node
// Benchmark: `imagegate init --unpack` of a 1 GiB, 4-layer encrypted image (decrypt, HMAC, gunzip, safe unpack),
// next to `umoci raw unpack` of the same image in plaintext (unpack only), same input, same run. Reports wall time,
// throughput and peak RSS. Not a test: it asserts nothing.
//
//   npm run build && npm run bench:unpack        (IMAGEGATE_BENCH_LAYER_BYTES=67108864 for a quick run)
import { spawnSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { benchImage, cli, printTable, record, requirePrerequisites, timed, writeKeyPair } from './bench-lib.mjs';

const layerBytes = Number(process.env.IMAGEGATE_BENCH_LAYER_BYTES ?? 256 * 1024 ** 2);
const layers = Number(process.env.IMAGEGATE_BENCH_LAYERS ?? 4);
const runs = Number(process.env.IMAGEGATE_BENCH_RUNS ?? 3);
const work = process.env.IMAGEGATE_BENCH_DIR ?? path.join('/tmp', 'imagegate-bench-unpack');
const bytes = layerBytes * layers;
requirePrerequisites([['umoci (apt-get install umoci)', spawnSync('umoci', ['--version']).status === 0]]);

await mkdir(work, { recursive: true });
const src = await benchImage(work, layers, layerBytes);
const { pub, priv } = await writeKeyPair(work);
const enc = path.join(work, 'enc');
await rm(enc, { recursive: true, force: true });
const e = spawnSync(process.execPath, [cli, 'encrypt', '-q', `oci:${src}:bench`, `oci:${enc}:bench`, '-r', `jwe:${pub}`], { encoding: 'utf8' });
if (e.status !== 0) throw new Error(e.stderr);

const cases = [
  {
    tool: 'imagegate init --unpack',
    op: 'decrypt + verify + unpack',
    run: (i) => timed(process.execPath, [cli, 'init', '--unpack', path.join(work, `ig-${i}`), '--paths', 'data', '-k', priv, `oci:${enc}:bench`, '--platform', 'linux/amd64']),
    dir: (i) => path.join(work, `ig-${i}`),
  },
  {
    tool: 'umoci raw unpack',
    op: 'unpack (plaintext)',
    run: (i) => timed('umoci', ['raw', 'unpack', '--rootless', '--image', `${src}:bench`, path.join(work, `um-${i}`)]),
    dir: (i) => path.join(work, `um-${i}`),
  },
];

const results = [];
for (let i = 0; i < runs; i++) {
  for (const c of cases) {
    await rm(c.dir(i), { recursive: true, force: true });
    await mkdir(path.join(work, `ig-${i}`), { recursive: true });
    record(results, c, i, c.run(i), bytes);
    await rm(c.dir(i), { recursive: true, force: true });
  }
}
console.log(`\nimage: ${layers} layers × ${layerBytes} bytes = ${(bytes / 1024 ** 3).toFixed(2)} GiB pseudo-random, gzip level 0, jwe (RSA); ${runs} run(s) each; node ${process.version}`);
printTable(cases, results);
