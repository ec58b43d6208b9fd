/**
 * Kubernetes API schemas for kubeconform, made from the sources test/infra/build-deploy-tools.sh fetches: the
 * definitions of Kubernetes' swagger.json that carry `x-kubernetes-group-version-kind`, and the `openAPIV3Schema` of
 * each served version of some CustomResourceDefinitions. Each becomes one self-contained, strict JSON schema (draft 4,
 * kubeconform's default), like `openapi2jsonschema --strict --standalone` makes them:
 *
 * - strict: an object that declares `properties` gets `additionalProperties: false`, unless it says
 *   `x-kubernetes-preserve-unknown-fields`; schemas inside anyOf/allOf/oneOf/not stay open, since they only add
 *   constraints to the object around them;
 * - self-contained: every `$ref` points into the file's own `definitions`, which hold the referenced swagger
 *   definitions (references can be recursive, so they are copied, not inlined);
 * - int-or-string (IntOrString, `x-kubernetes-int-or-string`) accepts a string or an integer, a Quantity a string or
 *   a number, and `nullable` adds null to the type;
 * - `apiVersion` and `kind` must be the file's own, and a CRD's bare `metadata: {type: object}` becomes ObjectMeta,
 *   so a typo under metadata is caught there too.
 *
 * The files are laid out for the kubeconform `-schema-location` template `SCHEMA_LOCATION_TEMPLATE`: kubeconform's
 * `.Group` is the API group, or for the core group the version ("v1"), so core kinds live in `<dir>/v1/`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** kubeconform's `-schema-location`, relative to the schema directory. */
export const SCHEMA_LOCATION_TEMPLATE = '{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json';

type Schema = { [key: string]: unknown };
/** A converted swagger definition and the definitions it references. */
type Definitions = Map<string, { schema: Schema; refs: Set<string> }>;

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

const DEFINITION_REF = '#/definitions/';
const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
/** Keywords whose value is a map from names to schemas. */
const SCHEMA_MAPS = ['properties', 'patternProperties', 'definitions'] as const;
/** Keywords whose value is a list of schemas that constrain the same instance as the schema around them. */
const JUNCTORS = ['allOf', 'anyOf', 'oneOf'] as const;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where kubeconform looks for the schema of `gvk`, relative to the schema directory (see SCHEMA_LOCATION_TEMPLATE). */
export function schemaFileFor({ group, version, kind }: GroupVersionKind): string {
  return path.join(group === '' ? version : group, `${kind.toLowerCase()}_${version}.json`);
}

/**
 * The strict, open-API-free form of one schema node. `refs` collects the definition names it references; `inJunctor`
 * says the node is a branch of anyOf/allOf/oneOf/not, which must not close the object (see the file comment).
 */
function convertNode(node: Schema, refs: Set<string>, inJunctor: boolean): Schema {
  const ref = node.$ref;
  if (typeof ref === 'string') {
    if (!ref.startsWith(DEFINITION_REF)) throw new Error(`unsupported $ref ${ref}`);
    refs.add(ref.slice(DEFINITION_REF.length));
    return { $ref: ref }; // draft 4 ignores a $ref's siblings (descriptions, patch strategies) anyway
  }
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description' || key === 'nullable' || key.startsWith('x-kubernetes-')) continue;
    if ((SCHEMA_MAPS as readonly string[]).includes(key) && isSchema(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, sub]) => [name, isSchema(sub) ? convertNode(sub, refs, false) : sub]),
      );
    } else if ((JUNCTORS as readonly string[]).includes(key) && Array.isArray(value)) {
      out[key] = value.map((sub: unknown) => (isSchema(sub) ? convertNode(sub, refs, true) : sub));
    } else if (key === 'not' && isSchema(value)) {
      out[key] = convertNode(value, refs, true);
    } else if ((key === 'items' || key === 'additionalProperties' || key === 'additionalItems') && isSchema(value)) {
      out[key] = convertNode(value, refs, false);
    } else if (key === 'items' && Array.isArray(value)) {
      out[key] = value.map((sub: unknown) => (isSchema(sub) ? convertNode(sub, refs, false) : sub));
    } else {
      out[key] = value;
    }
  }

  if (node.format === 'int-or-string' || node['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    if (out.format === 'int-or-string') delete out.format;
    // A CRD's int-or-string field usually spells the alternatives out already.
    out.anyOf ??= [{ type: 'integer' }, { type: 'string' }];
  }
  if (node.nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  }
  const open = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (node['x-kubernetes-embedded-resource'] === true && isSchema(out.properties)) {
    // An embedded object is a whole resource: apiVersion, kind and metadata are implied.
    const implied = { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' } };
    out.properties = { ...implied, ...out.properties };
  }
  if (!open && !inJunctor && isSchema(out.properties) && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

/** The converted swagger definitions that `names` reference, directly or through each other. */
function definitionsClosure(names: Iterable<string>, definitions: Definitions): Schema {
  const out: Schema = {};
  const pending = [...names];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (name in out) continue;
    const def = definitions.get(name);
    if (def === undefined) throw new Error(`$ref to a missing definition ${name}`);
    out[name] = def.schema;
    pending.push(...def.refs);
  }
  return out;
}

/** A root schema for `gvk`: pins apiVersion and kind, and carries the definitions it needs. */
function resourceSchema(root: Schema, refs: Set<string>, gvk: GroupVersionKind, definitions: Definitions): Schema {
  const apiVersion = gvk.group === '' ? gvk.version : `${gvk.group}/${gvk.version}`;
  const properties: Schema = isSchema(root.properties) ? { ...root.properties } : {};
  properties.apiVersion = { type: 'string', enum: [apiVersion] };
  properties.kind = { type: 'string', enum: [gvk.kind] };
  const out: Schema = { $schema: 'http://json-schema.org/draft-04/schema#', ...root, properties };
  if (refs.size > 0) out.definitions = definitionsClosure(refs, definitions);
  return out;
}

/** A `{group, version, kind}` from an `x-kubernetes-group-version-kind` entry, or undefined if it is not one. */
function toGvk(value: unknown): GroupVersionKind | undefined {
  if (!isSchema(value)) return undefined;
  const { group, version, kind } = value;
  if (typeof group !== 'string' || typeof version !== 'string' || typeof kind !== 'string') return undefined;
  return { group, version, kind };
}

/**
 * Strict standalone schemas, keyed by their file under the schema directory, for every definition of `swagger` (a
 * Kubernetes swagger.json) with a group-version-kind and every served version of the `crds` (CustomResourceDefinition
 * objects). Throws when two sources claim one file.
 */
export function convertToKubeconformSchemas(swagger: unknown, crds: readonly unknown[]): Map<string, Schema> {
  if (!isSchema(swagger) || !isSchema(swagger.definitions)) throw new Error('swagger.json has no definitions');
  const definitions: Definitions = new Map();
  for (const [name, def] of Object.entries(swagger.definitions)) {
    if (!isSchema(def)) continue;
    const refs = new Set<string>();
    // A Quantity is written as `cpu: 500m` or `cpu: 2`: the API server takes numbers too.
    const quantity = { anyOf: [{ type: 'string' }, { type: 'number' }] };
    const schema = name === QUANTITY ? quantity : convertNode(def, refs, false);
    definitions.set(name, { schema, refs });
  }

  const files = new Map<string, Schema>();
  const add = (gvk: GroupVersionKind, schema: Schema, source: string): void => {
    const file = schemaFileFor(gvk);
    if (files.has(file)) throw new Error(`${source}: ${file} is already taken by another source`);
    files.set(file, schema);
  };

  for (const [name, def] of Object.entries(swagger.definitions)) {
    const gvks: unknown = isSchema(def) ? def['x-kubernetes-group-version-kind'] : undefined;
    for (const gvk of Array.isArray(gvks) ? gvks.map(toGvk) : []) {
      if (gvk === undefined) throw new Error(`${name}: malformed x-kubernetes-group-version-kind`);
      const { schema, refs } = definitions.get(name)!;
      add(gvk, resourceSchema(schema, refs, gvk, definitions), `swagger definition ${name}`);
    }
  }

  for (const crd of crds) {
    if (!isSchema(crd) || crd.kind !== 'CustomResourceDefinition' || !isSchema(crd.spec)) {
      throw new Error('not a CustomResourceDefinition');
    }
    const { group, names, versions } = crd.spec;
    const kind = isSchema(names) ? names.kind : undefined;
    if (typeof group !== 'string' || typeof kind !== 'string' || !Array.isArray(versions)) {
      const name = JSON.stringify(isSchema(crd.metadata) ? crd.metadata.name : undefined);
      throw new Error(`CustomResourceDefinition ${name} lacks spec.group, spec.names.kind or spec.versions`);
    }
    for (const v of versions) {
      if (!isSchema(v) || v.served !== true) continue;
      const openApi = isSchema(v.schema) ? v.schema.openAPIV3Schema : undefined;
      if (typeof v.name !== 'string' || !isSchema(openApi)) {
        throw new Error(`${kind}.${group}: a served version without a name or openAPIV3Schema`);
      }
      const refs = new Set<string>();
      const root = convertNode(openApi, refs, false);
      const metadata = isSchema(root.properties) ? root.properties.metadata : undefined;
      if (isSchema(metadata) && Object.keys(metadata).every((key) => key === 'type')) {
        root.properties = { ...(root.properties as Schema), metadata: { $ref: DEFINITION_REF + OBJECT_META } };
        refs.add(OBJECT_META);
      }
      const gvk = { group, version: v.name, kind };
      add(gvk, resourceSchema(root, refs, gvk, definitions), `CustomResourceDefinition ${kind}.${group}`);
    }
  }
  return files;
}

/** The converter's own source: a change to it makes a new schema directory. */
const CONVERTER_HASH = createHash('sha256')
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex')
  .slice(0, 12);

/** The schema directory `ensureKubeconformSchemas` makes under the tools' directory. */
export function schemaDirFor(toolsDir: string): string {
  return path.join(toolsDir, `schemas-${CONVERTER_HASH}`);
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * Makes `schemaDirFor(toolsDir)` from `toolsDir/sources/kubernetes/swagger.json` and `toolsDir/sources/crds/*.yaml`,
 * unless it is there. It is written to a temporary directory and renamed into place, so concurrent callers (test
 * workers) each see it complete or not at all; the one that loses the race drops its copy.
 */
export async function ensureKubeconformSchemas(toolsDir: string): Promise<string> {
  const dir = schemaDirFor(toolsDir);
  if (await exists(dir)) return dir;
  const swagger: unknown = JSON.parse(await readFile(path.join(toolsDir, 'sources/kubernetes/swagger.json'), 'utf8'));
  const crdDir = path.join(toolsDir, 'sources/crds');
  const crds: unknown[] = [];
  for (const file of (await readdir(crdDir)).filter((name) => name.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(path.join(crdDir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const value: unknown = doc.toJS();
      if (value !== null) crds.push(value);
    }
  }
  const files = convertToKubeconformSchemas(swagger, crds);

  const work = await mkdtemp(path.join(toolsDir, '.schemas-'));
  try {
    for (const [file, schema] of files) {
      await mkdir(path.join(work, path.dirname(file)), { recursive: true });
      await writeFile(path.join(work, file), JSON.stringify(schema));
    }
    await rename(work, dir);
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    // Another worker published it first: theirs is as good as ours.
    if (await exists(dir)) return dir;
    throw err;
  }
  return dir;
}
