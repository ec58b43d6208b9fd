import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const doc = readFileSync(path.join(repo, 'docs/threat-model.md'), 'utf8');

/** `gate-attacks`, `vault.test.ts`, `unit/policy/evaluate.test.ts` → the test file they name. */
function testFile(name: string): string {
  if (name.startsWith('unit/')) return path.join(repo, 'test', name);
  return path.join(repo, 'test/integration', name.endsWith('.test.ts') ? name : `${name}.test.ts`);
}

/** Every `[file: "title fragment", "another"; file2]` reference in the document. */
function references(): Array<{ file: string; fragment?: string }> {
  const out: Array<{ file: string; fragment?: string }> = [];
  for (const [, inside] of doc.matchAll(/\[([^\]]+)\](?!\()/g)) {
    // A reference may wrap across lines like the prose around it; the title fragment it quotes is one line.
    for (const part of inside!.replace(/\s+/g, ' ').split(';').map((p) => p.trim())) {
      const m = /^([\w./-]+)(?::\s*(.*))?$/.exec(part);
      if (m === null || !/^(unit\/|[\w-]+(\.test\.ts)?$)/.test(m[1]!)) continue;
      const fragments = m[2] !== undefined ? [...m[2].matchAll(/"([^"]+)"/g)].map((f) => f[1]!) : [];
      if (fragments.length === 0) out.push({ file: m[1]! });
      for (const fragment of fragments) out.push({ file: m[1]!, fragment });
    }
  }
  return out;
}

describe('docs/threat-model.md', () => {
  it('names, for its claims, tests that exist, by file and by a fragment of the test title', () => {
    const refs = references();
    expect(refs.length).toBeGreaterThan(20);
    const broken = refs.filter(({ file, fragment }) => {
      const f = testFile(file);
      if (!existsSync(f)) return true;
      return fragment !== undefined && !readFileSync(f, 'utf8').includes(fragment);
    });
    expect(broken).toEqual([]);
  });
});
