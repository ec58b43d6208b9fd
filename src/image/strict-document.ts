import { YAMLError } from 'yaml';
import { ImagegateError } from '../errors.js';
import { formatError, type JsonReader } from './validate.js';

/**
 * Helpers for imagegate's own strict YAML documents (the admission policy, the Vault setup): a field this build does
 * not know is an error, never ignored, so a typo cannot silently weaken what the document means.
 */

/** Absent or YAML null: the field takes its default. */
export function absent(r: JsonReader): boolean {
  return r.value === undefined || r.value === null;
}

export function present(r: JsonReader, what: string): JsonReader {
  if (absent(r)) r.fail(`is missing; it ${what}`);
  return r;
}

export function knownFields(r: JsonReader, known: readonly string[]): void {
  for (const name of Object.keys(r.object())) {
    if (!known.includes(name)) {
      throw formatError(r.where, fieldPath(r.path, name), `is not a field this build knows; the fields here are ${known.join(', ')}`);
    }
  }
}

function fieldPath(path: string, name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`;
}

/** A YAML parse failure as "WHERE: not valid YAML at line L, column C: …". */
export function yamlSyntaxError(e: unknown, where: string, code: 'BAD_FORMAT' | 'USAGE'): ImagegateError {
  const message = e instanceof Error ? e.message.trimEnd() : String(e);
  let at = '';
  if (e instanceof YAMLError && e.linePos !== undefined && !/ at line \d+, column \d+/.test(message)) {
    at = ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}`;
  }
  return new ImagegateError(code, `${where}: not valid YAML${at}: ${message}`, { cause: e });
}
