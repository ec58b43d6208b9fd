import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isImagegateError, type ImagegateError } from '../../../src/errors.js';
import { loadPolicyFile, MAX_POLICY_BYTES, parsePolicy } from '../../../src/policy/load-policy.js';

const HEAD = 'apiVersion: imagegate.dev/v1alpha1\nkind: AdmissionPolicy\n';

function policy(body: string): string {
  return `${HEAD}${body}`;
}

/** The error parsePolicy throws for `text`; fails the test if it parses. */
function errorOf(text: string, where = 'policy.yaml'): ImagegateError {
  try {
    parsePolicy(text, where);
  } catch (e) {
    if (isImagegateError(e)) return e;
    throw e;
  }
  throw new Error('expected parsePolicy to throw');
}

function expectBad(text: string, ...fragments: string[]): ImagegateError {
  const e = errorOf(text);
  expect(e.code).toBe('BAD_FORMAT');
  expect(e.message.startsWith('policy.yaml: ')).toBe(true);
  for (const f of fragments) expect(e.message).toContain(f);
  return e;
}

describe('parsePolicy: defaults', () => {
  it('fills every default for a minimal document', () => {
    const p = parsePolicy(policy('repositories: []\n'), 'policy.yaml');
    expect(p).toEqual({
      apiVersion: 'imagegate.dev/v1alpha1',
      kind: 'AdmissionPolicy',
      mode: 'enforce',
      runtimeModel: 'node',
      failurePolicy: 'closed',
      namespaces: { include: ['*'], exempt: [] },
      repositories: [],
      insecureRegistries: [],
    });
  });

  it('fills rule and key defaults', () => {
    const p = parsePolicy(
      policy(`repositories:
  - match: registry.example/prod/**
  - match: registry.example/team/*
    keys:
      - key: transit/keys/prod
`),
      'policy.yaml',
    );
    expect(p.repositories).toEqual([
      { match: 'registry.example/prod/**', requireEncrypted: true, keys: [], vaultOnly: false },
      { match: 'registry.example/team/*', requireEncrypted: true, keys: [{ key: 'transit/keys/prod', minVersion: 1, serviceAccounts: [] }], vaultOnly: true },
    ]);
  });

  it('treats YAML null (an empty value) as absent', () => {
    const p = parsePolicy(
      policy(`mode:
namespaces:
  include:
  exempt:
repositories:
  - match: r.example/a
    requireEncrypted:
    keys:
`),
      'policy.yaml',
    );
    expect(p.mode).toBe('enforce');
    expect(p.namespaces).toEqual({ include: ['*'], exempt: [] });
    expect(p.repositories[0]).toEqual({ match: 'r.example/a', requireEncrypted: true, keys: [], vaultOnly: false });
  });

  it('reads every field when given', () => {
    const p = parsePolicy(
      policy(`mode: warn
runtimeModel: pod
failurePolicy: open
namespaces:
  include: [prod, "team-*"]
  exempt: [kube-system, imagegate]
repositories:
  - match: registry.example/prod/**
    requireEncrypted: false
    keys:
      - key: transit-prod/keys/layers
        minVersion: 3
        serviceAccounts: ["prod/*", "ci/deployer"]
insecureRegistries: ["127.0.0.1:5000", "LOCALHOST:5001"]
`),
      'policy.yaml',
    );
    expect(p).toEqual({
      apiVersion: 'imagegate.dev/v1alpha1',
      kind: 'AdmissionPolicy',
      mode: 'warn',
      runtimeModel: 'pod',
      failurePolicy: 'open',
      namespaces: { include: ['prod', 'team-*'], exempt: ['kube-system', 'imagegate'] },
      repositories: [
        {
          match: 'registry.example/prod/**',
          requireEncrypted: false,
          keys: [{ key: 'transit-prod/keys/layers', minVersion: 3, serviceAccounts: ['prod/*', 'ci/deployer'] }],
          vaultOnly: true,
        },
      ],
      insecureRegistries: ['127.0.0.1:5000', 'localhost:5001'],
    });
  });

  it('accepts each mode', () => {
    for (const mode of ['enforce', 'warn', 'audit']) {
      expect(parsePolicy(policy(`mode: ${mode}\nrepositories: []\n`), 'p').mode).toBe(mode);
    }
  });

  it('reads JSON, which is YAML', () => {
    const p = parsePolicy(
      JSON.stringify({ apiVersion: 'imagegate.dev/v1alpha1', kind: 'AdmissionPolicy', repositories: [{ match: 'r.example/x', keys: [{ key: 'app' }] }] }),
      'policy.json',
    );
    expect(p.repositories[0]!.keys[0]!.key).toBe('transit/keys/app');
  });

  it('reads the documented example in docs/', async () => {
    const p = await loadPolicyFile(join(import.meta.dirname, '../../../docs/policy-example.yaml'));
    expect(p.repositories.length).toBeGreaterThan(0);
    expect(p.namespaces.exempt).toContain('kube-system');
  });
});

describe('parsePolicy: key names', () => {
  const keyOf = (text: string): string =>
    parsePolicy(policy(`repositories:\n  - match: r.example/x\n    keys:\n      - key: ${JSON.stringify(text)}\n`), 'p').repositories[0]!.keys[0]!.key;

  it('normalises the short NAME form to transit/keys/NAME', () => {
    expect(keyOf('prod-layers')).toBe('transit/keys/prod-layers');
  });

  it('normalises the short MOUNT/NAME form', () => {
    expect(keyOf('transit-prod/app')).toBe('transit-prod/keys/app');
    expect(keyOf('team/transit/app')).toBe('team/transit/keys/app');
  });

  it('keeps the long MOUNT/keys/NAME form', () => {
    expect(keyOf('transit/keys/app')).toBe('transit/keys/app');
    expect(keyOf('team/transit/keys/app.v2')).toBe('team/transit/keys/app.v2');
  });

  it('names the path of a malformed key', () => {
    expectBad(policy(`repositories:\n  - match: r.example/x\n    keys:\n      - key: app\n      - key: "bad key"\n`), '$.repositories[0].keys[1].key', '"bad key"', 'MOUNT/keys/NAME');
  });

  it('refuses the same key listed twice in a rule, even written differently', () => {
    expectBad(
      policy(`repositories:\n  - match: r.example/x\n    keys:\n      - key: app\n      - key: transit/keys/app\n`),
      '$.repositories[0].keys[1].key',
      'already listed at $.repositories[0].keys[0]',
    );
  });
});

describe('parsePolicy: validation errors name the field', () => {
  it('minVersion must be an integer ≥ 1', () => {
    const body = (v: string): string => policy(`repositories:\n  - match: r.example/a\n  - match: r.example/b\n    keys:\n      - key: app\n        minVersion: ${v}\n`);
    const e = expectBad(body('two'), '$.repositories[1].keys[0].minVersion must be an integer ≥ 1, got "two"');
    expect(e.message).toBe('policy.yaml: $.repositories[1].keys[0].minVersion must be an integer ≥ 1, got "two"');
    expectBad(body('0'), '$.repositories[1].keys[0].minVersion', 'got 0');
    expectBad(body('-3'), '$.repositories[1].keys[0].minVersion', 'got -3');
    expectBad(body('1.5'), '$.repositories[1].keys[0].minVersion', 'got 1.5');
    expectBad(body('"2"'), '$.repositories[1].keys[0].minVersion', 'got "2"');
    expectBad(body('true'), '$.repositories[1].keys[0].minVersion', 'got true');
  });

  it('apiVersion is required', () => {
    expectBad('kind: AdmissionPolicy\nrepositories: []\n', '$.apiVersion is missing', 'imagegate.dev/v1alpha1');
  });

  it('an unknown apiVersion says which versions this build reads', () => {
    expectBad('apiVersion: imagegate.dev/v2\nkind: AdmissionPolicy\nrepositories: []\n', '$.apiVersion', '"imagegate.dev/v2"', 'it reads imagegate.dev/v1alpha1');
  });

  it('an unknown apiVersion is reported before unknown fields', () => {
    expectBad('apiVersion: imagegate.dev/v2\nkind: AdmissionPolicy\nnewField: 1\nrepositories: []\n', '$.apiVersion');
  });

  it('apiVersion must be a string', () => {
    expectBad('apiVersion: 1\nkind: AdmissionPolicy\nrepositories: []\n', '$.apiVersion must be a string, got 1');
  });

  it('kind must be AdmissionPolicy', () => {
    expectBad('apiVersion: imagegate.dev/v1alpha1\nkind: Pod\nrepositories: []\n', '$.kind must be AdmissionPolicy, got "Pod"');
    expectBad('apiVersion: imagegate.dev/v1alpha1\nrepositories: []\n', '$.kind is missing');
  });

  it('mode, runtimeModel and failurePolicy are enumerations', () => {
    expectBad(policy('mode: permissive\nrepositories: []\n'), '$.mode must be one of enforce, warn, audit, got "permissive"');
    expectBad(policy('runtimeModel: cluster\nrepositories: []\n'), '$.runtimeModel must be one of node, pod, got "cluster"');
    expectBad(policy('failurePolicy: Fail\nrepositories: []\n'), '$.failurePolicy must be one of closed, open, got "Fail"');
    expectBad(policy('mode: 1\nrepositories: []\n'), '$.mode must be one of', 'got 1');
  });

  it('the document must be a mapping', () => {
    expectBad('- a\n- b\n', '$ must be an object');
    expectBad('just a string\n', '$ must be an object');
  });

  it('an empty document is refused', () => {
    expectBad('', 'empty');
    expectBad('# only a comment\n', 'empty');
  });

  it('repositories is required and must be a list', () => {
    expectBad(HEAD, '$.repositories is missing');
    expectBad(policy('repositories: r.example/x\n'), '$.repositories must be an array');
    expectBad(policy('repositories:\n  - r.example/x\n'), '$.repositories[0] must be an object, got "r.example/x"');
  });

  it('match is required, a non-empty string, a repository glob', () => {
    expectBad(policy('repositories:\n  - requireEncrypted: true\n'), '$.repositories[0].match is missing');
    expectBad(policy('repositories:\n  - match: ""\n'), '$.repositories[0].match must be a non-empty');
    expectBad(policy('repositories:\n  - match: "   "\n'), '$.repositories[0].match must be a non-empty');
    expectBad(policy('repositories:\n  - match: 42\n'), '$.repositories[0].match must be a string, got 42');
    expectBad(policy('repositories:\n  - match: docker://r.example/x\n'), '$.repositories[0].match', 'without a transport');
    expectBad(policy('repositories:\n  - match: r.example/x@sha256:abc\n'), '$.repositories[0].match', 'without a digest');
    expectBad(policy('repositories:\n  - match: nginx\n'), '$.repositories[0].match', 'starting with the registry host');
  });

  it('canonicalises each glob the way image names are, so no other spelling escapes it', () => {
    const p = parsePolicy(
      policy(
        'repositories:\n  - match: Registry.Example:443/prod/**\n  - match: index.docker.io/nginx\n  - match: registry-1.docker.io/team/*\n  - match: "[0:0::1]:5000/x"\n  - match: "*.Example/x"\n',
      ),
      'p',
    );
    expect(p.repositories.map((r) => r.match)).toEqual(['registry.example/prod/**', 'docker.io/library/nginx', 'docker.io/team/*', '[::1]:5000/x', '*.example/x']);
    // `**` keeps meaning every Docker Hub repository, not only library/ ones.
    const hub = parsePolicy(policy('repositories:\n  - match: index.docker.io/**\n  - match: docker.io/*\n'), 'p');
    expect(hub.repositories.map((r) => r.match)).toEqual(['docker.io/**', 'docker.io/library/*']);
  });

  it('insecureRegistries may name only registries on the node itself, in canonical form', () => {
    expectBad(policy('repositories: []\ninsecureRegistries: [registry.example:5000]\n'), '$.insecureRegistries[0]', 'on the node itself');
    expectBad(policy('repositories: []\ninsecureRegistries: ["http://127.0.0.1:5000"]\n'), '$.insecureRegistries[0]');
    expect(parsePolicy(policy('repositories: []\ninsecureRegistries: ["[0:0::1]:5000"]\n'), 'p').insecureRegistries).toEqual(['[::1]:5000']);
  });

  it('vaultOnly defaults to true when keys are listed, and needs keys', () => {
    const p = parsePolicy(policy('repositories:\n  - match: r.example/x\n    keys: [{key: app}]\n    vaultOnly: false\n'), 'p');
    expect(p.repositories[0]!.vaultOnly).toBe(false);
    expectBad(policy('repositories:\n  - match: r.example/x\n    vaultOnly: true\n'), '$.repositories[0].vaultOnly', 'needs keys');
  });

  it('refuses a rule that repeats an earlier match, which could never apply', () => {
    expectBad(policy('repositories:\n  - match: r.example/**\n  - match: r.example/**\n'), '$.repositories[1].match', 'repeats $.repositories[0].match');
  });

  it('requireEncrypted must be a boolean', () => {
    expectBad(policy('repositories:\n  - match: r.example/x\n    requireEncrypted: "no"\n'), '$.repositories[0].requireEncrypted must be true or false, got "no"');
  });

  it('keys must be a list of objects with a key', () => {
    expectBad(policy('repositories:\n  - match: r.example/x\n    keys: app\n'), '$.repositories[0].keys must be an array');
    expectBad(policy('repositories:\n  - match: r.example/x\n    keys: [app]\n'), '$.repositories[0].keys[0] must be an object, got "app"');
    expectBad(policy('repositories:\n  - match: r.example/x\n    keys:\n      - minVersion: 2\n'), '$.repositories[0].keys[0].key is missing');
    expectBad(policy('repositories:\n  - match: r.example/x\n    keys:\n      - key: 7\n'), '$.repositories[0].keys[0].key must be a string, got 7');
  });

  it('serviceAccounts must be NAMESPACE/NAME globs', () => {
    const body = (sa: string): string => policy(`repositories:\n  - match: r.example/x\n    keys:\n      - key: app\n        serviceAccounts: ${sa}\n`);
    expectBad(body('["prod/api", "api"]'), '$.repositories[0].keys[0].serviceAccounts[1]', 'NAMESPACE/NAME', 'got "api"');
    expectBad(body('["*"]'), '$.repositories[0].keys[0].serviceAccounts[0]', 'got "*"');
    expectBad(body('["a/b/c"]'), '$.repositories[0].keys[0].serviceAccounts[0]', 'got "a/b/c"');
    expectBad(body('["/api"]'), '$.repositories[0].keys[0].serviceAccounts[0]');
    expectBad(body('["prod/"]'), '$.repositories[0].keys[0].serviceAccounts[0]');
    expectBad(body('[1]'), '$.repositories[0].keys[0].serviceAccounts[0] must be a string, got 1');
    expectBad(body('prod/api'), '$.repositories[0].keys[0].serviceAccounts must be an array, got "prod/api"');
  });

  it('namespaces must be an object of glob lists', () => {
    expectBad(policy('namespaces: [prod]\nrepositories: []\n'), '$.namespaces must be an object');
    expectBad(policy('namespaces:\n  include: prod\nrepositories: []\n'), '$.namespaces.include must be an array, got "prod"');
    expectBad(policy('namespaces:\n  exempt: [kube-system, 3]\nrepositories: []\n'), '$.namespaces.exempt[1] must be a string, got 3');
    expectBad(policy('namespaces:\n  exempt: [""]\nrepositories: []\n'), '$.namespaces.exempt[0] must be a namespace glob');
  });
});

describe('parsePolicy: unknown fields are refused', () => {
  it('at the top level, listing the known fields', () => {
    const e = expectBad(policy('mdoe: warn\nrepositories: []\n'), '$.mdoe is not a field this build knows');
    expect(e.message).toContain('apiVersion, kind, mode, runtimeModel, failurePolicy, namespaces, repositories');
  });

  it('in namespaces', () => {
    expectBad(policy('namespaces:\n  exclude: [kube-system]\nrepositories: []\n'), '$.namespaces.exclude is not a field', 'include, exempt');
  });

  it('in a repository rule', () => {
    expectBad(policy('repositories:\n  - match: r.example/x\n    requireEncryption: false\n'), '$.repositories[0].requireEncryption is not a field', 'match, requireEncrypted, keys, vaultOnly');
  });

  it('in a key', () => {
    expectBad(
      policy('repositories:\n  - match: r.example/x\n    keys:\n      - key: app\n        serviceAccount: prod/api\n'),
      '$.repositories[0].keys[0].serviceAccount is not a field',
      'key, minVersion, serviceAccounts',
    );
  });

  it('quotes field names that are not identifiers', () => {
    expectBad(policy('repositories: []\n"odd key": 1\n'), '$["odd key"] is not a field');
  });
});

describe('parsePolicy: YAML syntax', () => {
  it('names the file, line and column of a syntax error', () => {
    const e = expectBad(`${HEAD}repositories:\n  - match: [r.example/x\n`, 'not valid YAML', 'line ');
    expect(e.message).toMatch(/line \d+, column \d+/);
  });

  it('refuses duplicate keys, naming the line', () => {
    const e = expectBad(`${HEAD}mode: warn\nmode: enforce\nrepositories: []\n`, 'not valid YAML', 'line 4, column 1');
    expect(e.message).toMatch(/unique/i);
  });

  it('refuses a bad indentation with its line', () => {
    expectBad(`${HEAD}repositories:\n  - match: r.example/x\n     keys: []\n`, 'not valid YAML', 'line 4');
  });

  it('refuses several documents in one file', () => {
    expectBad(`${HEAD}repositories: []\n---\n${HEAD}repositories: []\n`, 'not valid YAML');
  });

  it('refuses an undefined alias', () => {
    expectBad(`${HEAD}repositories: *rules\n`, 'not valid YAML');
  });

  it('uses the given name in the message', () => {
    expect(errorOf('a: [', '/etc/imagegate/policy.yaml').message.startsWith('/etc/imagegate/policy.yaml: not valid YAML')).toBe(true);
  });
});

describe('loadPolicyFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imagegate-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and parses a file, naming it in errors', async () => {
    const good = join(dir, 'good.yaml');
    await writeFile(good, policy('mode: audit\nrepositories: []\n'));
    expect((await loadPolicyFile(good)).mode).toBe('audit');

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, policy('mode: nope\nrepositories: []\n'));
    await expect(loadPolicyFile(bad)).rejects.toThrow(`${bad}: $.mode must be one of`);
  });

  it('a missing file is a USAGE error naming it', async () => {
    const missing = join(dir, 'missing.yaml');
    const e = await loadPolicyFile(missing).catch((x: unknown) => x);
    expect(isImagegateError(e, 'USAGE')).toBe(true);
    expect((e as Error).message).toContain(missing);
  });

  it('a directory is a USAGE error', async () => {
    const sub = join(dir, 'sub');
    await mkdir(sub);
    const e = await loadPolicyFile(sub).catch((x: unknown) => x);
    expect(isImagegateError(e)).toBe(true);
    expect((e as Error).message).toContain(sub);
  });

  it('refuses a file over 1 MiB', async () => {
    const big = join(dir, 'big.yaml');
    await writeFile(big, policy(`repositories: []\n${'#'.repeat(MAX_POLICY_BYTES)}\n`));
    const e = await loadPolicyFile(big).catch((x: unknown) => x);
    expect(isImagegateError(e, 'USAGE')).toBe(true);
    expect((e as Error).message).toContain('1 MiB');
  });

  it('accepts a file of exactly 1 MiB', async () => {
    const text = policy('repositories: []\n');
    const exact = join(dir, 'exact.yaml');
    await writeFile(exact, text + '#'.repeat(MAX_POLICY_BYTES - Buffer.byteLength(text)));
    expect((await loadPolicyFile(exact)).repositories).toEqual([]);
  });
});
