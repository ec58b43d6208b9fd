import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../src/errors.js';

/**
 * docs/troubleshooting.md is keyed by the messages imagegate prints. Each entry's heading quotes a message as
 * `### \`literal … literal\``, where `…` stands for what the message fills in (a host, a digest, a path). This test
 * keeps the page honest: every literal piece of every heading must still be in a string literal of the source under
 * src/, cli/ or webhook/, so rewording a message fails CI until the page follows. Messages printed by other software
 * are marked `(from ocicrypt)` and the like, and are checked to be absent from our source instead.
 */

const REPO = path.join(import.meta.dirname, '../../..');
const PAGE = path.join(REPO, 'docs/troubleshooting.md');
const SOURCE_DIRS = ['src', 'cli', 'webhook'];
const THIRD_PARTY = ['ocicrypt', 'containerd', 'CRI-O', 'Kubernetes'];
/** A fragment's literal pieces must add up to this many characters, so a heading cannot pass on `: ` alone. */
const MIN_LITERAL_CHARS = 16;
/** Third-party pieces this long must not be in our source (shorter ones, like `code =`, may be by chance). */
const MIN_DISTINCTIVE = 12;

const HEADING = /^### `([^`]+)`(?: \[rule ([a-z-]+)\]| \(from ([A-Za-z-]+)\))?$/;

interface Entry {
  line: number;
  fragment: string;
  rule?: string;
  from?: string;
  body: string;
}

/** The `###` entries of the page, each with its text up to the next heading (headings in code blocks do not count). */
function parseEntries(markdown: string): { entries: Entry[]; malformed: string[] } {
  const entries: Entry[] = [];
  const malformed: string[] = [];
  let current: Entry | undefined;
  let inFence = false;
  markdown.split('\n').forEach((text, i) => {
    if (text.startsWith('```')) inFence = !inFence;
    if (!inFence && text.startsWith('### ')) {
      const m = HEADING.exec(text);
      current = undefined;
      if (m === null) malformed.push(`line ${i + 1}: ${text}`);
      else entries.push((current = { line: i + 1, fragment: m[1]!, ...(m[2] !== undefined ? { rule: m[2] } : {}), ...(m[3] !== undefined ? { from: m[3] } : {}), body: '' }));
    } else if (!inFence && /^#{1,2} /.test(text)) {
      current = undefined;
    } else if (current !== undefined) {
      current.body += `${text}\n`;
    }
  });
  return { entries, malformed };
}

/** The literal pieces of a fragment: the text between the `…` placeholders, trimmed. */
function piecesOf(fragment: string): string[] {
  return fragment
    .split('…')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

// ---- string literals of TypeScript source, without a compiler API (TypeScript 7 ships none) ----

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', 0: '\0' };

/** Applies a literal's escape sequences: what the program prints. */
function cook(raw: string): string {
  return raw.replace(/\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r?\n|[^])/g, (_, e: string) => {
    if (e.startsWith('u{')) return String.fromCodePoint(parseInt(e.slice(2, -1), 16));
    if (e.length > 1 && (e[0] === 'u' || e[0] === 'x')) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (e === '\n' || e === '\r\n') return '';
    return ESCAPES[e] ?? e;
  });
}

const REGEX_AFTER_WORDS = new Set(['return', 'typeof', 'case', 'in', 'of', 'else', 'do', 'void', 'throw', 'yield', 'await', 'instanceof', 'new', 'delete']);

/**
 * The cooked text of every string literal and of every template-literal segment (the parts around `${…}`) in a
 * TypeScript file. Comments are skipped, and regular-expression literals are told from division the usual way
 * (by what precedes the slash), so a quote inside a regex or a comment is not taken for a string.
 */
function stringLiterals(source: string, file = 'source'): string[] {
  const out: string[] = [];
  /** Brace depth at each open `${`, innermost last. */
  const substitutions: number[] = [];
  let depth = 0;
  let i = 0;

  const fail = (why: string, at: number): never => {
    const line = source.slice(0, at).split('\n').length;
    throw new Error(`${file}:${line}: ${why}`);
  };

  /** Reads template text from `start` up to the closing backtick or the next `${`; returns where to go on. */
  const templateSegment = (start: number): number => {
    let raw = '';
    for (let j = start; j < source.length; j++) {
      const ch = source[j]!;
      if (ch === '\\') {
        raw += source.slice(j, j + 2);
        j++;
      } else if (ch === '`') {
        out.push(cook(raw));
        return j + 1;
      } else if (ch === '$' && source[j + 1] === '{') {
        out.push(cook(raw));
        substitutions.push(depth);
        return j + 2;
      } else {
        raw += ch;
      }
    }
    return fail('unterminated template literal', start);
  };

  const regexMayStart = (at: number): boolean => {
    const before = source.slice(Math.max(0, at - 40), at).trimEnd();
    const word = /([A-Za-z_$][\w$]*)$/.exec(before)?.[1];
    if (word !== undefined) return REGEX_AFTER_WORDS.has(word);
    return before === '' || !/[\w$)\]]$/.test(before);
  };

  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      i = end < 0 ? source.length : end;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated comment', i);
      i = end + 2;
    } else if (c === '"' || c === "'") {
      let raw = '';
      let j = i + 1;
      for (; source[j] !== c; j++) {
        if (j >= source.length || source[j] === '\n') fail('unterminated string literal', i);
        if (source[j] === '\\') raw += source[j++];
        raw += source[j];
      }
      out.push(cook(raw));
      i = j + 1;
    } else if (c === '`') {
      i = templateSegment(i + 1);
    } else if (c === '}' && substitutions.length > 0 && depth === substitutions.at(-1)) {
      substitutions.pop();
      i = templateSegment(i + 1);
    } else if (c === '/' && regexMayStart(i)) {
      let j = i + 1;
      let inClass = false;
      for (; j < source.length && source[j] !== '\n'; j++) {
        const ch = source[j];
        if (ch === '\\') j++;
        else if (ch === '[') inClass = true;
        else if (ch === ']') inClass = false;
        else if (ch === '/' && !inClass) break;
      }
      // Not a regex after all (no closing slash on the line): treat the slash as an operator.
      i = source[j] === '/' ? j + 1 : i + 1;
    } else {
      if (c === '{') depth++;
      else if (c === '}') depth--;
      i++;
    }
  }
  if (substitutions.length > 0) fail('unterminated template substitution', source.length);
  return out;
}

async function typeScriptFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await typeScriptFiles(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

describe('the string-literal reader', () => {
  it('reads strings and template segments, skips comments and regexes, and applies escapes', () => {
    const source = [
      "// 'not this'",
      "const a = 'it\\'s' + \"two\";",
      '/* "nor this" */',
      'const r = /["`]x/g.test(a) ? 1 / 2 : 3;',
      'const t = `head ${a ? `inner ${"deep"}` : { k: 1 }.k} tail \\`quoted\\``;',
      'function f() { return /\'/.source; }',
    ].join('\n');
    expect(stringLiterals(source)).toEqual(["it's", 'two', 'head ', 'inner ', 'deep', '', ' tail `quoted`']);
  });
});

describe('docs/troubleshooting.md', () => {
  let entries: Entry[];
  let malformed: string[];
  let markdown: string;
  /** Every literal of every source file, by file. */
  const literals = new Map<string, string[]>();

  beforeAll(async () => {
    markdown = await readFile(PAGE, 'utf8');
    ({ entries, malformed } = parseEntries(markdown));
    for (const dir of SOURCE_DIRS) {
      for (const file of await typeScriptFiles(path.join(REPO, dir))) {
        literals.set(path.relative(REPO, file), stringLiterals(await readFile(file, 'utf8'), file));
      }
    }
  });

  it('writes every entry heading as ### `message fragment`, optionally with [rule NAME] or (from SOFTWARE)', () => {
    expect(malformed).toEqual([]);
    expect(entries.length).toBeGreaterThanOrEqual(35);
  });

  it('quotes only messages that are still in the source, piece by piece between the … placeholders', () => {
    const stale: string[] = [];
    for (const e of entries.filter((x) => x.from === undefined)) {
      const pieces = piecesOf(e.fragment);
      if (pieces.reduce((n, p) => n + p.length, 0) < MIN_LITERAL_CHARS) {
        stale.push(`line ${e.line}: \`${e.fragment}\` has fewer than ${MIN_LITERAL_CHARS} literal characters to check`);
        continue;
      }
      // All pieces of one message come from one file; a message moved elsewhere keeps its pieces together.
      const home = [...literals].find(([, texts]) => pieces.every((p) => texts.some((t) => t.includes(p))));
      if (home === undefined) {
        const missing = pieces.filter((p) => ![...literals.values()].some((texts) => texts.some((t) => t.includes(p))));
        stale.push(`line ${e.line}: \`${e.fragment}\`: ${missing.length > 0 ? `not in the source: ${missing.map((p) => JSON.stringify(p)).join(', ')}` : 'its pieces are in no single file'}`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('marks as third-party only messages imagegate does not print itself', () => {
    const third = entries.filter((e) => e.from !== undefined);
    expect(third.length).toBeGreaterThan(0);
    for (const e of third) {
      expect(THIRD_PARTY, `line ${e.line}`).toContain(e.from);
      const ours = piecesOf(e.fragment).filter((p) => p.length >= MIN_DISTINCTIVE && [...literals.values()].some((texts) => texts.some((t) => t.includes(p))));
      expect(ours, `line ${e.line}: \`${e.fragment}\` is imagegate's own message; drop "(from ${e.from})"`).toEqual([]);
    }
  });

  it('names only admission rules the policy evaluation reports', () => {
    const all = new Set([...literals.values()].flat());
    for (const e of entries.filter((x) => x.rule !== undefined)) expect(all.has(e.rule!), `line ${e.line}: rule ${e.rule}`).toBe(true);
  });

  it('gives every entry its exit code, cause and fix', () => {
    const incomplete = entries
      .filter((e) => !/^\*\*(Exit \d+|No exit code)\b/m.test(e.body) || !e.body.includes('**Cause.**') || !e.body.includes('**Fix.**'))
      .map((e) => `line ${e.line}: \`${e.fragment}\``);
    expect(incomplete).toEqual([]);
  });

  it('links only to headings the page has (GitHub anchors)', () => {
    const anchors = new Set<string>();
    for (const line of markdown.split('\n').filter((l) => /^#{1,6} /.test(l))) {
      const base = line.replace(/^#+ /, '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
      let anchor = base;
      for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
      anchors.add(anchor);
    }
    const broken = [...markdown.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!).filter((a) => !anchors.has(a));
    expect(broken).toEqual([]);
  });

  it('lists every exit code the CLI uses in its table', () => {
    for (const code of new Set([...Object.values(EXIT_CODES), 0, 1, 10])) {
      expect(markdown, `exit code ${code}`).toMatch(new RegExp(`^\\| \`${code}\` \\|`, 'm'));
    }
  });
});
