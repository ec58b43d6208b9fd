/**
 * Machine-readable output holds its promise (issue 15, CI and operations; docs/json-output.md): every `--json`
 * document of the built CLI parses and carries `schemaVersion` and its `kind`, and `--progress json` writes JSON
 * lines only, each with the schema version, ending with a `result` event. Against a real docker-registry. The list of
 * commands with `--json` is read from the CLI's own help, so a new one cannot go untested.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciLayout, randomLayerFiles, writeBigLayerLayout } from '../support/image-builder.js';
import { CLI, imagegate, imagegateOk } from '../support/imagegate.js';
import { freePort, startRegistry, type RegistryServer } from '../support/registry-server.js';
import { makeKeyPair, requireTool, tempDir, type KeyPairFiles } from '../support/tools.js';

const DOC = fileURLToPath(new URL('../../docs/json-output.md', import.meta.url));
const ready = Boolean(requireTool('docker-registry'));

let reg: RegistryServer;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let keys: KeyPairFiles;
let layout: string;
let encryptedDigest: string;

/** Each line of `text` as JSON; fails naming the first line that is not. */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${JSON.stringify(line)}\nin:\n${text}`);
      }
    });
}

/** The commands (`audit`, `webhook review`, …) whose help offers --json, read from the CLI itself. */
async function commandsWithJson(prefix: string[] = []): Promise<string[]> {
  const help = (await imagegateOk([...prefix, '--help'])).stdout;
  // The Commands: section runs to the first blank line.
  const section = help.includes('\nCommands:\n') ? help.slice(help.indexOf('\nCommands:\n') + '\nCommands:\n'.length).split('\n\n')[0]! : '';
  const commands = section.split('\n');
  const names = commands.map((l) => /^ {2}(\S+)/.exec(l)?.[1]).filter((n): n is string => n !== undefined && n !== 'help');
  const out: string[] = [];
  if (prefix.length > 0 && names.length === 0 && /^\s+--json\b/m.test(help)) out.push(prefix.join(' '));
  for (const name of names) out.push(...(await commandsWithJson([...prefix, name])));
  return out;
}

beforeAll(async () => {
  if (!ready) return;
  const dir = await tempDir('imagegate-json-');
  cleanup = dir.cleanup;
  work = dir.path;
  reg = (await startRegistry())!;
  keys = await makeKeyPair(work, 'ec-p256', 'team');
  layout = (await buildOciLayout(path.join(work, 'plain'), { tag: 'v1', images: [{ layers: [{ files: randomLayerFiles(171, 1, 16 * 1024) }, { files: randomLayerFiles(172, 1, 8 * 1024) }] }] })).dir;
}, 60_000);

afterAll(async () => {
  await reg?.stop();
  await cleanup?.();
});

describe.skipIf(!ready)('--progress json', () => {
  it('encrypt: JSON lines only, each with the schema version, the last a result naming what was written', async () => {
    const dst = `docker://${reg.host}/team/app:1`;
    const r = await imagegate(['encrypt', `oci:${layout}:v1`, dst, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '--progress', 'json']);
    expect(r.code, r.stderr).toBe(0);
    encryptedDigest = r.stdout.trim();
    expect(encryptedDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const lines = jsonLines(r.stderr);
    expect(lines.every((l) => l.schemaVersion === 1)).toBe(true);
    expect(lines.filter((l) => l.event === 'progress').length).toBeGreaterThan(0);
    expect(lines.some((l) => l.event === 'message' && String(l.message).startsWith('encrypted 2 layer(s)'))).toBe(true);
    expect(lines.filter((l) => l.event === 'result')).toHaveLength(1);
    expect(lines.at(-1)).toMatchObject({ event: 'result', ok: true, digest: encryptedDigest, destination: dst, rewrittenLayers: 2 });
  });

  it('decrypt: the same, into an OCI layout', async () => {
    const dst = `oci:${path.join(work, 'decrypted')}:v1`;
    const r = await imagegate(['decrypt', `docker://${reg.host}/team/app:1`, dst, '--key', keys.privateKeyPath, '--insecure', '--progress', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stderr);
    expect(lines.every((l) => l.schemaVersion === 1)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ event: 'result', ok: true, digest: r.stdout.trim(), destination: dst, rewrittenLayers: 2 });
  });

  it('a failure ends with a failed result naming the error code and exit code', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const r = await imagegate(['encrypt', `oci:${layout}:v1`, `docker://${closed}/team/app:1`, '-r', `jwe:${keys.publicKeyPath}`, '--insecure', '--progress', 'json', '--retry-times', '0']);
    expect(r.code).toBe(8);
    // Every line JSON: the failure is the result event, not printed again as text.
    const results = jsonLines(r.stderr).filter((l) => l.event === 'result');
    expect(results).toEqual([expect.objectContaining({ schemaVersion: 1, ok: false, error: expect.objectContaining({ code: 'REGISTRY', exitCode: 8 }) })]);
  });

  it('Ctrl-C: the notice is a message event and the interruption the result, still JSON lines only', async () => {
    const big = path.join(work, 'big');
    await writeBigLayerLayout(big, 256 * 1024 * 1024, { compression: 'gzip-stored', tag: 'v1' });
    const child = spawn(process.execPath, [CLI, 'encrypt', `oci:${big}:v1`, `oci:${path.join(work, 'big-enc')}:v1`, '-r', `jwe:${keys.publicKeyPath}`, '--progress', 'json', '-j', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Interrupt once the layer is moving (a progress event with bytes read).
    for (const end = Date.now() + 60_000; Date.now() < end && !/"bytes":[1-9]/.test(stderr); ) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGINT');
    expect(await exit, stderr).toBe(130);
    const lines = jsonLines(stderr);
    expect(lines.some((l) => l.event === 'message' && String(l.message).includes('SIGINT: stopping'))).toBe(true);
    expect(lines.at(-1)).toMatchObject({ event: 'result', ok: false, error: expect.objectContaining({ code: 'INTERRUPTED', exitCode: 130 }) });
  }, 120_000);
});

describe.skipIf(!ready)('--json documents', () => {
  it('the commands offering --json are the ones checked here', async () => {
    expect((await commandsWithJson()).sort()).toEqual(['audit', 'inspect', 'webhook review']);
  });

  it('inspect, audit and webhook review: one JSON document with schemaVersion and a kind docs/json-output.md describes', async () => {
    const doc = await readFile(DOC, 'utf8');
    const policy = path.join(work, 'policy.yaml');
    await writeFile(policy, `apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\nrepositories:\n  - match: "${reg.host}/team/**"\n    requireEncrypted: true\n`);
    const pod = `apiVersion: v1\nkind: Pod\nmetadata: { name: app, namespace: team }\nspec: { containers: [{ name: app, image: "${reg.host}/team/app:1" }] }\n`;
    const runs: Array<[string, Promise<{ code: number | null; stdout: string; stderr: string }>]> = [
      ['InspectReport', imagegate(['inspect', `docker://${reg.host}/team/app:1`, '--insecure', '--json'])],
      ['AuditReport', imagegate(['audit', reg.host, '--insecure', '--json'])],
      ['WebhookReview', imagegate(['webhook', 'review', '--policy', policy, '-', '--insecure', '--json'], { input: pod })],
    ];
    for (const [kind, running] of runs) {
      const r = await running;
      expect(r.code, `${kind}: ${r.stderr}`).toBe(0);
      const parsed = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(parsed, kind).toMatchObject({ schemaVersion: 1, kind });
      expect(Object.keys(parsed).slice(0, 2), 'the envelope comes first').toEqual(['schemaVersion', 'kind']);
      expect(doc, `docs/json-output.md describes ${kind}`).toContain(`— \`${kind}\``);
    }
  });
});
