import { ImagegateError } from '../errors.js';

/**
 * Field readers for untrusted JSON (manifests, indexes, key files). Each names the JSON path of the bad field and
 * quotes what was there, so a user can find it in their document.
 */
export type JsonObject = Record<string, unknown>;

export function formatError(where: string, path: string, problem: string): ImagegateError {
  return new ImagegateError('BAD_FORMAT', `${where}: ${path} ${problem}`);
}

export function quote(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function parseJson(bytes: Uint8Array | string, where: string): unknown {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ImagegateError('BAD_FORMAT', `${where}: not valid JSON (${(e as Error).message})`);
  }
}

export class JsonReader {
  constructor(
    readonly where: string,
    readonly value: unknown,
    readonly path = '$',
  ) {}

  object(): JsonObject {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) {
      throw formatError(this.where, this.path, `must be an object, got ${quote(this.value)}`);
    }
    return this.value as JsonObject;
  }

  field(name: string): JsonReader {
    return new JsonReader(this.where, this.object()[name], `${this.path}.${name}`);
  }

  has(name: string): boolean {
    return this.object()[name] !== undefined;
  }

  string(): string {
    if (typeof this.value !== 'string') throw formatError(this.where, this.path, `must be a string, got ${quote(this.value)}`);
    return this.value;
  }

  optionalString(): string | undefined {
    return this.value === undefined ? undefined : this.string();
  }

  integer(): number {
    if (typeof this.value !== 'number' || !Number.isSafeInteger(this.value)) {
      throw formatError(this.where, this.path, `must be an integer, got ${quote(this.value)}`);
    }
    return this.value;
  }

  array(): JsonReader[] {
    if (!Array.isArray(this.value)) throw formatError(this.where, this.path, `must be an array, got ${quote(this.value)}`);
    return this.value.map((v, i) => new JsonReader(this.where, v, `${this.path}[${i}]`));
  }

  optionalArray(): JsonReader[] {
    return this.value === undefined || this.value === null ? [] : this.array();
  }

  stringMap(): Record<string, string> | undefined {
    if (this.value === undefined || this.value === null) return undefined;
    const o = this.object();
    for (const [k, v] of Object.entries(o)) {
      if (typeof v !== 'string') throw formatError(this.where, `${this.path}.${k}`, `must be a string, got ${quote(v)}`);
    }
    return o as Record<string, string>;
  }

  fail(problem: string): never {
    throw formatError(this.where, this.path, problem);
  }
}
