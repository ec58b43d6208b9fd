import { open } from 'node:fs/promises';
import { parse } from 'yaml';
import { ImagegateError, systemErrorCode } from '../errors.js';
import { absent, knownFields, present, yamlSyntaxError } from '../image/strict-document.js';
import { JsonReader, quote } from '../image/validate.js';
import { canonicalDomain, canonicalRepositoryGlob, isLoopbackHost } from '../image/reference.js';
import { formatTransitKey, readTransitKey } from '../vault/transit-key.js';
import type { AdmissionPolicy, AllowedKey, PolicyMode, RepositoryRule, RuntimeModel } from './types.js';

/**
 * Reads an admission policy document (YAML, or JSON, which is YAML) into a validated {@link AdmissionPolicy}.
 *
 * The document is strict: every field is checked and named by its path (`$.repositories[1].keys[0].minVersion`) when
 * it is wrong, and a field this build does not know is an error, not ignored. A misspelt `serviceAccount` or
 * `requireEncryption` silently ignored would weaken a security policy without anyone noticing.
 *
 * Defaults: `mode: enforce`, `runtimeModel: node`, `failurePolicy: closed`, `namespaces.include: ["*"]`,
 * `namespaces.exempt: []`, and per repository rule `requireEncrypted: true`, `keys: []`, `vaultOnly: true` when keys are
 * listed; per key `minVersion: 1` and
 * `serviceAccounts: []`, which means NO service account may run images wrapped by that key. A field set to YAML null
 * (`exempt:` with nothing after it) counts as absent. `repositories` must be present (`[]` protects nothing).
 */

const POLICY_API_VERSIONS = ['imagegate.dev/v1alpha1'] as const;
const POLICY_KIND = 'AdmissionPolicy';
/** Policy files larger than this are refused: a policy is a few kilobytes, and the webhook reads it at start-up. */
export const MAX_POLICY_BYTES = 1024 * 1024;


const TOP_FIELDS = ['apiVersion', 'kind', 'mode', 'runtimeModel', 'failurePolicy', 'namespaces', 'repositories', 'insecureRegistries'];
const NAMESPACE_FIELDS = ['include', 'exempt'];
const RULE_FIELDS = ['match', 'requireEncrypted', 'keys', 'vaultOnly'];
const KEY_FIELDS = ['key', 'minVersion', 'serviceAccounts'];

export function parsePolicy(text: string, where: string): AdmissionPolicy {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw yamlSyntaxError(e, where, 'BAD_FORMAT');
  }
  if (doc === null || doc === undefined) {
    throw new ImagegateError('BAD_FORMAT', `${where}: the policy document is empty; it needs at least apiVersion, kind and repositories`);
  }
  const root = new JsonReader(where, doc);
  root.object();

  // The version first: a document of another version may have fields this build does not know.
  const apiVersion = present(root.field('apiVersion'), `must be ${POLICY_API_VERSIONS.join(' or ')}`).string();
  if (!(POLICY_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    root.field('apiVersion').fail(`is ${quote(apiVersion)}, a version this build does not read; it reads ${POLICY_API_VERSIONS.join(', ')}`);
  }
  const kind = present(root.field('kind'), `must be ${POLICY_KIND}`).string();
  if (kind !== POLICY_KIND) root.field('kind').fail(`must be ${POLICY_KIND}, got ${quote(kind)}`);
  knownFields(root, TOP_FIELDS);

  const mode = oneOf<PolicyMode>(root.field('mode'), ['enforce', 'warn', 'audit'], 'enforce');
  const runtimeModel = oneOf<RuntimeModel>(root.field('runtimeModel'), ['node', 'pod'], 'node');
  const failurePolicy = oneOf<'closed' | 'open'>(root.field('failurePolicy'), ['closed', 'open'], 'closed');

  const ns = root.field('namespaces');
  let include = ['*'];
  let exempt: string[] = [];
  if (!absent(ns)) {
    knownFields(ns, NAMESPACE_FIELDS);
    if (!absent(ns.field('include'))) include = globList(ns.field('include'), 'a namespace glob');
    if (!absent(ns.field('exempt'))) exempt = globList(ns.field('exempt'), 'a namespace glob');
  }

  const repos = present(root.field('repositories'), 'must be a list of repository rules (write [] to protect nothing)');
  const repositories: RepositoryRule[] = [];
  const seenMatch = new Map<string, string>();
  for (const r of repos.array()) {
    const rule = repositoryRule(r);
    const earlier = seenMatch.get(rule.match);
    if (earlier !== undefined) {
      r.field('match').fail(`${quote(rule.match)} repeats ${earlier}.match; the first matching rule wins, so this one would never apply`);
    }
    seenMatch.set(rule.match, r.path);
    repositories.push(rule);
  }

  const insecureReader = root.field('insecureRegistries');
  const insecureRegistries = absent(insecureReader)
    ? []
    : insecureReader.array().map((item) => {
        const host = item.string();
        if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d+)?$/.test(host) || !isLoopbackHost(canonicalDomain(host))) {
          item.fail(`must be a registry on the node itself (localhost, 127.0.0.0/8 or [::1], with its port), got ${quote(host)}; give other registries a certificate`);
        }
        return canonicalDomain(host);
      });

  return { apiVersion: apiVersion as AdmissionPolicy['apiVersion'], kind: POLICY_KIND, mode, runtimeModel, failurePolicy, namespaces: { include, exempt }, repositories, insecureRegistries };
}

/**
 * Reads and parses a policy file. Everything wrong with it (missing, too big, malformed, a bad field) is a usage
 * error, exit 2: the policy is the operator's own input, like a flag, not an image (exit 3), so scripts and CI can
 * tell "fix your policy" from "the image is broken". `parsePolicy` keeps BAD_FORMAT for documents from elsewhere.
 */
export async function loadPolicyFile(file: string): Promise<AdmissionPolicy> {
  try {
    return parsePolicy(await readPolicyText(file), file);
  } catch (e) {
    if (e instanceof ImagegateError && e.code === 'BAD_FORMAT') throw new ImagegateError('USAGE', e.message, { cause: e });
    throw e;
  }
}

async function readPolicyText(file: string): Promise<string> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_POLICY_BYTES) {
        throw new ImagegateError('BAD_FORMAT', `${file}: the policy file is ${size} bytes; policies larger than ${MAX_POLICY_BYTES} bytes (1 MiB) are refused`);
      }
      // Read one byte past the cap, in case the file grew after stat.
      const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > MAX_POLICY_BYTES) {
          throw new ImagegateError('BAD_FORMAT', `${file}: the policy file is larger than ${MAX_POLICY_BYTES} bytes (1 MiB); refused`);
        }
      }
      text = buffer.subarray(0, length).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (e) {
    if (e instanceof ImagegateError) throw e;
    const code = systemErrorCode(e);
    if (code === 'ENOENT') throw new ImagegateError('USAGE', `policy file ${file} does not exist`);
    if (code === 'EISDIR') throw new ImagegateError('USAGE', `policy file ${file} is a directory, not a file`);
    throw new ImagegateError('USAGE', `cannot read policy file ${file} (${code ?? String(e)}); check that it is a file this user may read`, { cause: e });
  }
  return text;
}

function repositoryRule(r: JsonReader): RepositoryRule {
  knownFields(r, RULE_FIELDS);
  const matchReader: JsonReader = present(r.field('match'), 'must be a repository glob such as registry.example/prod/**');
  const match = matchReader.string();
  if (match.trim() === '') matchReader.fail('must be a non-empty repository glob such as registry.example/prod/**');
  if (match !== match.trim()) matchReader.fail(`must not start or end with spaces, got ${quote(match)}`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(match) || match.startsWith('docker://')) {
    matchReader.fail(`must be a repository glob HOST/PATH without a transport, got ${quote(match)}`);
  }
  if (match.includes('@')) matchReader.fail(`must be a repository glob HOST/PATH without a digest, got ${quote(match)}`);
  if (!match.includes('/')) matchReader.fail(`must be a repository glob HOST/PATH, starting with the registry host (docker.io for Docker Hub), got ${quote(match)}`);

  const requireEncrypted = boolean(r.field('requireEncrypted'), true);

  const keys: AllowedKey[] = [];
  const seen = new Map<string, string>();
  const keysReader = r.field('keys');
  for (const k of absent(keysReader) ? [] : keysReader.array()) {
    const key = allowedKey(k);
    const earlier = seen.get(key.key);
    if (earlier !== undefined) k.field('key').fail(`${quote(key.key)} is already listed at ${earlier}; merge the two entries`);
    seen.set(key.key, `${k.path}`);
    keys.push(key);
  }
  // A jwe private key decrypts outside the gate, so a rule that names Vault keys accepts only them unless it says not.
  const vaultOnlyReader = r.field('vaultOnly');
  const vaultOnly = boolean(vaultOnlyReader, keys.length > 0);
  if (vaultOnly && keys.length === 0) vaultOnlyReader.fail('needs keys: list the Vault Transit keys this repository accepts');
  return { match: canonicalRepositoryGlob(match), requireEncrypted, keys, vaultOnly };
}

function allowedKey(k: JsonReader): AllowedKey {
  knownFields(k, KEY_FIELDS);
  const keyReader: JsonReader = present(k.field('key'), 'must name a Vault Transit key, as MOUNT/keys/NAME or [MOUNT/]NAME');
  const text = keyReader.string();
  const transitKey = readTransitKey(text);
  if (transitKey === undefined) {
    keyReader.fail(`must be a Vault Transit key as MOUNT/keys/NAME or [MOUNT/]NAME (letters, digits, ".", "_" and "-"), got ${quote(text)}`);
  }

  let minVersion = 1;
  const mv: JsonReader = k.field('minVersion');
  if (!absent(mv)) {
    if (typeof mv.value !== 'number' || !Number.isSafeInteger(mv.value) || mv.value < 1) {
      mv.fail(`must be an integer ≥ 1, got ${quote(mv.value)}`);
    }
    minVersion = mv.value;
  }

  const sa = k.field('serviceAccounts');
  const serviceAccounts: string[] = [];
  for (const s of absent(sa) ? [] : sa.array()) {
    const glob = s.string();
    const parts = glob.split('/');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      s.fail(`must be a service account glob NAMESPACE/NAME, e.g. prod/api or prod/*, got ${quote(glob)}`);
    }
    serviceAccounts.push(glob);
  }
  return { key: formatTransitKey(transitKey), minVersion, serviceAccounts };
}

function oneOf<T extends string>(r: JsonReader, values: readonly T[], fallback: T): T {
  if (absent(r)) return fallback;
  if (typeof r.value !== 'string' || !(values as readonly string[]).includes(r.value)) {
    r.fail(`must be one of ${values.join(', ')}, got ${quote(r.value)}`);
  }
  return r.value as T;
}

function boolean(r: JsonReader, fallback: boolean): boolean {
  if (absent(r)) return fallback;
  if (typeof r.value !== 'boolean') r.fail(`must be true or false, got ${quote(r.value)}`);
  return r.value;
}

function globList(r: JsonReader, what: string): string[] {
  return r.array().map((item) => {
    const s = item.string();
    if (s.trim() === '') item.fail(`must be ${what}, got ${quote(s)}`);
    return s;
  });
}
