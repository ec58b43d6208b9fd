/**
 * The envelope of every `--json` document and `--progress json` line (docs/json-output.md): `schemaVersion` says
 * which shape follows, `kind` which command wrote it. The version goes up only when a field changes meaning or goes
 * away; new fields may appear at any version, so readers ignore what they do not know.
 */
export const JSON_SCHEMA_VERSION = 1;

/** A `--json` document: the envelope, then the command's fields. */
export function jsonDocument(kind: string, body: object): string {
  return `${JSON.stringify({ schemaVersion: JSON_SCHEMA_VERSION, kind, ...body }, null, 2)}\n`;
}
