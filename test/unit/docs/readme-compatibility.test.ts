import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The README's "Tested clients and runtimes" table is a list of claims: each row either names the integration test
 * that runs that client, in a named version, or says "untested". A row whose test file is gone, a tested row without
 * a version, or a client the README talks about with no row at all, fails here.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
/** Clients and runtimes the README and docs say read imagegate's format: each must have a row, tested or not. */
const NAMED_CLIENTS = ['skopeo', 'buildah', 'podman', 'CRI-O', 'containerd'];

interface Row {
  client: string;
  cells: Record<string, string>;
}

/** The first table after the `## Tested clients and runtimes` heading, as rows keyed by header. */
function compatibilityTable(): Row[] {
  const start = readme.indexOf('\n## Tested clients and runtimes\n');
  expect(start, 'README.md has a "## Tested clients and runtimes" section').toBeGreaterThan(-1);
  const section = readme.slice(start + 1).split(/\n## /)[0]!;
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const split = (line: string): string[] => line.slice(1, line.lastIndexOf('|')).split(' | ').map((c) => c.trim());
  const header = split(lines[0]!);
  return lines.slice(2).map((line) => {
    const values = split(line);
    expect(values, line).toHaveLength(header.length);
    return { client: values[0]!, cells: Object.fromEntries(header.map((h, i) => [h, values[i]!])) };
  });
}

/** The column whose header starts with `prefix` ("test", "the client decrypts …", "imagegate decrypts …"). */
function column(row: Row, prefix: string): string {
  const key = Object.keys(row.cells).find((h) => h.startsWith(prefix));
  expect(key, `a column starting "${prefix}"`).toBeDefined();
  return row.cells[key!]!;
}

describe('README: Tested clients and runtimes', () => {
  const rows = compatibilityTable();

  it('names every client the docs say reads the format, tested or marked untested', () => {
    expect(rows.length).toBeGreaterThanOrEqual(NAMED_CLIENTS.length);
    for (const name of NAMED_CLIENTS) expect(rows.some((r) => r.client.includes(name)), `a row for ${name}`).toBe(true);
  });

  it('points each tested row at integration tests that exist and run that client, in a named version', () => {
    const tested = rows.filter((r) => column(r, 'test') !== '—');
    expect(tested.length).toBeGreaterThan(0);
    for (const row of tested) {
      const files = [...column(row, 'test').matchAll(/`([\w.-]+\.test\.ts)`/g)].map((m) => m[1]!);
      expect(files, `${row.client}: the test column names test files in backquotes`).not.toEqual([]);
      expect(row.client, `${row.client}: a tested row says which version`).toMatch(/\d+\.\d+/);
      // The client's own name ("skopeo", "buildah", "imgcrypt", "containerd"), as the test file spells it.
      const name = row.client.split(/[\s(`]/)[0]!;
      for (const file of files) {
        const full = path.join(repo, 'test/integration', file);
        expect(existsSync(full), `${row.client}: test/integration/${file} exists`).toBe(true);
        expect(readFileSync(full, 'utf8'), `${row.client}: ${file} runs ${name}`).toContain(name);
      }
    }
  });

  it('marks a row without a test untested in both directions', () => {
    for (const row of rows.filter((r) => column(r, 'test') === '—')) {
      expect(column(row, 'the client decrypts'), row.client).toMatch(/^untested/);
      expect(column(row, 'imagegate decrypts'), row.client).toMatch(/^untested/);
    }
  });
});
