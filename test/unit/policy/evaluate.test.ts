import { describe, expect, it } from 'vitest';
import type { WrappedKeyReference } from '../../../src/crypto/schemes/key-scheme.js';
import { evaluate } from '../../../src/policy/evaluate.js';
import { protectingPolicy } from '../../support/admission-policy.js';
import type {
  AdmissionPolicy,
  AdmissionSubject,
  AllowedKey,
  ContainerFacts,
  PlatformImageFacts,
  RepositoryRule,
  Violation,
} from '../../../src/policy/types.js';

const REPO = 'registry.example/prod/api';
const PROD_KEY = 'transit/keys/prod';

function key(over: Partial<AllowedKey> = {}): AllowedKey {
  return { key: PROD_KEY, minVersion: 1, serviceAccounts: ['prod/*'], ...over };
}

function rule(over: Partial<RepositoryRule> = {}): RepositoryRule {
  return { match: 'registry.example/prod/**', requireEncrypted: true, keys: [key()], vaultOnly: true, ...over };
}

function policy(over: Partial<AdmissionPolicy> = {}): AdmissionPolicy {
  return protectingPolicy(rule().match, { namespaces: { include: ['*'], exempt: ['kube-system'] }, repositories: [rule()], ...over });
}

function vaultKey(over: Partial<WrappedKeyReference> = {}): WrappedKeyReference {
  return { key: PROD_KEY, version: 1, binding: REPO, ...over };
}

/** A platform image whose layers are all Vault-wrapped with `keys` (the prod key, bound to REPO, by default). */
function vaultPlatform(platform: string | undefined, keys: WrappedKeyReference[] = [vaultKey()]): PlatformImageFacts {
  return { ...(platform !== undefined ? { platform } : {}), layers: 3, encryptedLayers: 3, schemes: ['provider.imagegate'], offlineSchemes: [], serviceKeys: keys, layersWithoutServiceKey: keys.length > 0 ? 0 : 3 };
}

function plainPlatform(platform?: string): PlatformImageFacts {
  return { ...(platform !== undefined ? { platform } : {}), layers: 3, encryptedLayers: 0, schemes: [], offlineSchemes: [], serviceKeys: [], layersWithoutServiceKey: 0 };
}

function jwePlatform(platform?: string): PlatformImageFacts {
  return { ...(platform !== undefined ? { platform } : {}), layers: 3, encryptedLayers: 3, schemes: ['jwe'], offlineSchemes: ['jwe'], serviceKeys: [], layersWithoutServiceKey: 3 };
}

function container(over: Partial<ContainerFacts> = {}): ContainerFacts {
  return {
    list: 'containers',
    name: 'api',
    image: `${REPO}:1.0`,
    repository: REPO,
    digest: 'sha256:' + 'a'.repeat(64),
    platforms: [vaultPlatform('linux/amd64')],
    ...over,
  };
}

function subject(containers: ContainerFacts[], over: Partial<AdmissionSubject> = {}): AdmissionSubject {
  return { namespace: 'prod', serviceAccount: 'api', containers, ...over };
}

function only(violations: Violation[]): Violation {
  expect(violations).toHaveLength(1);
  return violations[0]!;
}

describe('evaluate: namespaces', () => {
  it('skips an exempt namespace without looking at the images', () => {
    const d = evaluate(policy(), subject([container({ platforms: [plainPlatform()] })], { namespace: 'kube-system' }));
    expect(d).toEqual({ allowed: true, mode: 'enforce', skipped: 'namespace kube-system is exempt', violations: [], protectedBy: {} });
  });

  it('exempt globs match', () => {
    const p = policy({ namespaces: { include: ['*'], exempt: ['kube-*'] } });
    expect(evaluate(p, subject([container({ platforms: [plainPlatform()] })], { namespace: 'kube-public' })).skipped).toBe('namespace kube-public is exempt');
  });

  it('skips a namespace outside include', () => {
    const p = policy({ namespaces: { include: ['prod', 'team-*'], exempt: [] } });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })], { namespace: 'dev' }));
    expect(d.allowed).toBe(true);
    expect(d.skipped).toBe('namespace dev is not in scope of the policy');
    expect(d.violations).toEqual([]);
    expect(d.protectedBy).toEqual({});
  });

  it('checks a namespace matched by an include glob', () => {
    const p = policy({ namespaces: { include: ['prod', 'team-*'], exempt: [] } });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })], { namespace: 'team-a' }));
    expect(d.skipped).toBeUndefined();
    expect(d.allowed).toBe(false);
  });

  it('exempt wins over include', () => {
    const p = policy({ namespaces: { include: ['prod'], exempt: ['prod'] } });
    expect(evaluate(p, subject([container()])).skipped).toBe('namespace prod is exempt');
  });

  it('an empty include puts nothing in scope', () => {
    const p = policy({ namespaces: { include: [], exempt: [] } });
    expect(evaluate(p, subject([container({ platforms: [plainPlatform()] })])).skipped).toContain('not in scope');
  });

  it('echoes the mode when skipping', () => {
    expect(evaluate(policy({ mode: 'audit' }), subject([], { namespace: 'kube-system' })).mode).toBe('audit');
  });
});

describe('evaluate: protection', () => {
  it('allows a compliant image and records the rule that protects it', () => {
    const d = evaluate(policy(), subject([container()]));
    expect(d).toEqual({ allowed: true, mode: 'enforce', violations: [], protectedBy: { api: 'registry.example/prod/**' } });
  });

  it('lets an unprotected repository pass, plaintext or not', () => {
    const d = evaluate(policy(), subject([container({ name: 'tools', image: 'docker.io/library/busybox:1', repository: 'docker.io/library/busybox', platforms: [plainPlatform()] })]));
    expect(d).toEqual({ allowed: true, mode: 'enforce', violations: [], protectedBy: {} });
  });

  it('a policy with no rules protects nothing', () => {
    const d = evaluate(policy({ repositories: [] }), subject([container({ platforms: [plainPlatform()] })]));
    expect(d.allowed).toBe(true);
    expect(d.protectedBy).toEqual({});
  });

  it('`*` in a repository glob stays within one segment', () => {
    const p = policy({ repositories: [rule({ match: 'registry.example/*' })] });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })]));
    expect(d.protectedBy).toEqual({});
    expect(d.allowed).toBe(true);
  });

  it('the first matching rule wins, even when a later one is stricter', () => {
    const p = policy({
      repositories: [rule({ match: 'registry.example/prod/api', requireEncrypted: false, keys: [] }), rule({ match: 'registry.example/prod/**' })],
    });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })]));
    expect(d.protectedBy).toEqual({ api: 'registry.example/prod/api' });
    expect(d.violations).toEqual([]);
    expect(d.allowed).toBe(true);
  });

  it('the first matching rule wins, even when a later one is looser', () => {
    const p = policy({ repositories: [rule({ match: 'registry.example/prod/**' }), rule({ match: 'registry.example/prod/api', requireEncrypted: false, keys: [] })] });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })]));
    expect(d.protectedBy).toEqual({ api: 'registry.example/prod/**' });
    expect(only(d.violations).rule).toBe('encryption-required');
  });

  it('checks every container list and records each protected container', () => {
    const d = evaluate(
      policy(),
      subject([
        container({ name: 'init', list: 'initContainers', platforms: [plainPlatform()] }),
        container({ name: 'api' }),
        container({ name: 'debug', list: 'ephemeralContainers', image: 'busybox', repository: 'docker.io/library/busybox', platforms: [plainPlatform()] }),
      ]),
    );
    expect(d.protectedBy).toEqual({ init: 'registry.example/prod/**', api: 'registry.example/prod/**' });
    expect(only(d.violations)).toMatchObject({ container: 'init', rule: 'encryption-required' });
    expect(d.allowed).toBe(false);
  });
});

describe('evaluate: encryption-required', () => {
  it('fires for a plaintext image, naming container, image and platform', () => {
    const v = only(evaluate(policy(), subject([container({ platforms: [plainPlatform('linux/amd64')] })])).violations);
    expect(v.rule).toBe('encryption-required');
    expect(v.container).toBe('api');
    expect(v.image).toBe(`${REPO}:1.0`);
    expect(v.message).toContain('container api');
    expect(v.message).toContain(`${REPO}:1.0`);
    expect(v.message).toContain('linux/amd64');
    expect(v.message).toContain('registry.example/prod/**');
    expect(v.remedy).toContain('imagegate encrypt');
    expect(v.remedy).toContain('-r vault:transit/prod');
    expect(v.remedy).toContain(`docker://${REPO}`);
  });

  it('says nothing of a platform for a single-platform image', () => {
    const v = only(evaluate(policy(), subject([container({ platforms: [plainPlatform()] })])).violations);
    expect(v.message).not.toContain('platform');
    expect(v.message).toContain(`container api (${REPO}:1.0)`);
  });

  it('suggests vault:KEY when the rule lists no key', () => {
    const p = policy({ repositories: [rule({ keys: [] })] });
    expect(only(evaluate(p, subject([container({ platforms: [plainPlatform()] })])).violations).remedy).toContain('-r vault:KEY');
  });

  it('does not fire when the rule does not require encryption', () => {
    const p = policy({ repositories: [rule({ requireEncrypted: false })] });
    const d = evaluate(p, subject([container({ platforms: [plainPlatform()] })]));
    expect(d.violations).toEqual([]);
    expect(d.protectedBy).toEqual({ api: 'registry.example/prod/**' });
  });

  it('does not check keys of a plaintext image', () => {
    const d = evaluate(policy(), subject([container({ platforms: [plainPlatform()] })], { serviceAccount: 'intruder' }));
    expect(d.violations.map((v) => v.rule)).toEqual(['encryption-required']);
  });

  it('does not fire when at least one layer is encrypted', () => {
    const partial: PlatformImageFacts = { ...vaultPlatform('linux/amd64'), layers: 5, encryptedLayers: 1 };
    expect(evaluate(policy(), subject([container({ platforms: [partial] })])).violations).toEqual([]);
  });

  it('fails closed for a container with no platform image', () => {
    const v = only(evaluate(policy(), subject([container({ platforms: [] })])).violations);
    expect(v.rule).toBe('encryption-required');
    expect(v.message).toContain('no platform image');
  });
});

describe('evaluate: key-not-allowed', () => {
  it('fires for jwe-only wrapping when the rule lists keys', () => {
    const v = only(evaluate(policy(), subject([container({ platforms: [jwePlatform('linux/arm64')] })])).violations);
    expect(v.rule).toBe('key-not-allowed');
    expect(v.message).toContain('wrapped only with jwe');
    expect(v.message).toContain('linux/arm64');
    expect(v.message).toContain(PROD_KEY);
    expect(v.remedy).toContain('-r vault:transit/prod');
  });

  it('fires when the Vault scheme is present but no Vault key could be read', () => {
    const p: PlatformImageFacts = { ...vaultPlatform(undefined, []) };
    expect(only(evaluate(policy(), subject([container({ platforms: [p] })])).violations).rule).toBe('key-not-allowed');
  });

  it('fires when Vault keys are listed but the scheme is not', () => {
    const p: PlatformImageFacts = { ...vaultPlatform(undefined), schemes: ['jwe'], offlineSchemes: ['jwe'] };
    expect(only(evaluate(policy(), subject([container({ platforms: [p] })])).violations).message).toContain('wrapped only with jwe');
  });

  it('accepts jwe-only wrapping when the rule lists no keys', () => {
    const p = policy({ repositories: [rule({ keys: [] })] });
    expect(evaluate(p, subject([container({ platforms: [jwePlatform()] })])).violations).toEqual([]);
  });

  it('accepts any Vault key when the rule lists no keys (bindings still apply)', () => {
    const p = policy({ repositories: [rule({ keys: [] })] });
    const other = vaultPlatform(undefined, [vaultKey({ key: 'transit/keys/other', version: 1 })]);
    expect(evaluate(p, subject([container({ platforms: [other] })], { serviceAccount: 'anyone' })).violations).toEqual([]);
  });

  it('accepts jwe alongside an allowed Vault key only where the rule says vaultOnly: false', () => {
    const both: PlatformImageFacts = { ...vaultPlatform('linux/amd64'), schemes: ['jwe', 'provider.imagegate'], offlineSchemes: ['jwe'] };
    const loose = policy({ repositories: [rule({ vaultOnly: false })] });
    expect(evaluate(loose, subject([container({ platforms: [both] })])).violations).toEqual([]);
    const v = only(evaluate(policy(), subject([container({ platforms: [both] })])).violations);
    expect(v.rule).toBe('other-recipients');
    expect(v.message).toContain('also wrapped with jwe, which decrypts without asking Vault');
  });

  it('fires when one encrypted layer is wrapped only with jwe while another is Vault-wrapped', () => {
    // The attack: a second, jwe-only layer rode along with a Vault-wrapped one and passed the key check.
    const mixed: PlatformImageFacts = { ...vaultPlatform(undefined), schemes: ['jwe', 'provider.imagegate'], offlineSchemes: ['jwe'], layersWithoutServiceKey: 1 };
    const loose = policy({ repositories: [rule({ vaultOnly: false })] });
    const v = only(evaluate(loose, subject([container({ platforms: [mixed] })])).violations);
    expect(v.rule).toBe('key-not-allowed');
    expect(v.message).toContain('1 of its 3 encrypted layers are not wrapped with a Vault key');
  });

  it('fires for a Vault key not in the list, naming the key found and the keys allowed', () => {
    const p = policy({ repositories: [rule({ keys: [key(), key({ key: 'transit/keys/prod-2025' })] })] });
    const other = vaultPlatform('linux/amd64', [vaultKey({ key: 'transit/keys/dev', version: 7 })]);
    const v = only(evaluate(p, subject([container({ platforms: [other] })])).violations);
    expect(v.rule).toBe('key-not-allowed');
    expect(v.message).toContain('transit/keys/dev v7');
    expect(v.message).toContain('allowed: transit/keys/prod, transit/keys/prod-2025');
    expect(v.message).toContain('container api');
  });

  it('fires only for the disallowed key when an image carries two', () => {
    const two = vaultPlatform(undefined, [vaultKey(), vaultKey({ key: 'transit/keys/dev' })]);
    const v = only(evaluate(policy(), subject([container({ platforms: [two] })])).violations);
    expect(v.message).toContain('transit/keys/dev');
  });

  it('an allowed key passes', () => {
    const p = policy({ repositories: [rule({ keys: [key({ key: 'transit/keys/old' }), key()] })] });
    expect(evaluate(p, subject([container()])).violations).toEqual([]);
  });
});

describe('evaluate: key-version-too-old', () => {
  const p = policy({ repositories: [rule({ keys: [key({ minVersion: 3 })] })] });

  it('fires below the minimum, naming key, version and minimum', () => {
    const v = only(evaluate(p, subject([container({ platforms: [vaultPlatform('linux/amd64', [vaultKey({ version: 2 })])] })])).violations);
    expect(v.rule).toBe('key-version-too-old');
    expect(v.message).toContain(`${PROD_KEY} v2`);
    expect(v.message).toContain('3');
    expect(v.message).toContain('linux/amd64');
    expect(v.remedy).toContain(`imagegate rewrap docker://${REPO}`);
  });

  it('passes at and above the minimum', () => {
    for (const version of [3, 4]) {
      expect(evaluate(p, subject([container({ platforms: [vaultPlatform(undefined, [vaultKey({ version })])] })])).violations).toEqual([]);
    }
  });

  it('reports each old version carried', () => {
    const d = evaluate(p, subject([container({ platforms: [vaultPlatform(undefined, [vaultKey({ version: 1 }), vaultKey({ version: 2 }), vaultKey({ version: 3 })])] })]));
    expect(d.violations.map((v) => v.rule)).toEqual(['key-version-too-old', 'key-version-too-old']);
    expect(d.violations[0]!.message).toContain('v1');
    expect(d.violations[1]!.message).toContain('v2');
  });
});

describe('evaluate: service-account-not-allowed', () => {
  const withSa = (serviceAccounts: string[]): AdmissionPolicy => policy({ repositories: [rule({ keys: [key({ serviceAccounts })] })] });
  const run = (p: AdmissionPolicy, namespace: string, serviceAccount: string): Violation[] =>
    evaluate(p, subject([container()], { namespace, serviceAccount })).violations;

  it('`prod/*` allows any service account in prod', () => {
    expect(run(withSa(['prod/*']), 'prod', 'api')).toEqual([]);
    expect(run(withSa(['prod/*']), 'prod', 'default')).toEqual([]);
  });

  it('`prod/*` does not allow other namespaces, even prefixed ones', () => {
    expect(only(run(withSa(['prod/*']), 'prod-staging', 'api')).rule).toBe('service-account-not-allowed');
    expect(only(run(withSa(['prod/*']), 'dev', 'api')).rule).toBe('service-account-not-allowed');
  });

  it('`prod/api` allows only that service account', () => {
    expect(run(withSa(['prod/api']), 'prod', 'api')).toEqual([]);
    expect(only(run(withSa(['prod/api']), 'prod', 'api-2')).rule).toBe('service-account-not-allowed');
    expect(only(run(withSa(['prod/api']), 'prod', 'default')).rule).toBe('service-account-not-allowed');
  });

  it('`*/api` allows that name in any namespace; `prod-*/*` any prod-like namespace', () => {
    expect(run(withSa(['*/api']), 'team-a', 'api')).toEqual([]);
    expect(run(withSa(['prod-*/*']), 'prod-eu', 'worker')).toEqual([]);
    expect(only(run(withSa(['prod-*/*']), 'prod', 'worker')).rule).toBe('service-account-not-allowed');
  });

  it('any listed glob is enough', () => {
    expect(run(withSa(['ci/deployer', 'prod/api']), 'prod', 'api')).toEqual([]);
  });

  it('names the service account and the allowed globs', () => {
    const v = only(run(withSa(['prod/api', 'prod/worker-*']), 'prod', 'intruder'));
    expect(v.message).toContain('prod/intruder');
    expect(v.message).toContain('prod/api, prod/worker-*');
    expect(v.message).toContain(PROD_KEY);
    expect(v.remedy).toContain('allowed service account');
    expect(v.remedy).toContain('prod/intruder');
  });

  it('an empty list allows nobody, and says so', () => {
    const v = only(run(withSa([]), 'prod', 'api'));
    expect(v.rule).toBe('service-account-not-allowed');
    expect(v.message).toContain('no service account');
  });

  it('is checked against the key found, not the first key of the rule', () => {
    const p = policy({ repositories: [rule({ keys: [key({ serviceAccounts: ['prod/*'] }), key({ key: 'transit/keys/batch', serviceAccounts: ['batch/*'] })] })] });
    const batch = [vaultPlatform(undefined, [vaultKey({ key: 'transit/keys/batch' })])];
    expect(evaluate(p, subject([container({ platforms: batch })], { namespace: 'batch', serviceAccount: 'job' })).violations).toEqual([]);
    const v = only(evaluate(p, subject([container({ platforms: batch })], { namespace: 'prod', serviceAccount: 'api' })).violations);
    expect(v.message).toContain('transit/keys/batch');
    expect(v.message).toContain('batch/*');
  });
});

describe('evaluate: binding-mismatch', () => {
  it('fires when a key is bound to another repository', () => {
    const p = vaultPlatform('linux/amd64', [vaultKey({ binding: 'registry.example/dev/api' })]);
    const v = only(evaluate(policy(), subject([container({ platforms: [p] })])).violations);
    expect(v.rule).toBe('binding-mismatch');
    expect(v.message).toContain('registry.example/dev/api');
    expect(v.message).toContain(REPO);
    expect(v.message).toContain('linux/amd64');
    expect(v.remedy).toContain(`imagegate rewrap docker://${REPO} --bind ${REPO}`);
  });

  it('applies when the rule lists no keys', () => {
    const p = policy({ repositories: [rule({ keys: [] })] });
    const plat = vaultPlatform(undefined, [vaultKey({ key: 'transit/keys/any', binding: 'elsewhere.example/x' })]);
    expect(only(evaluate(p, subject([container({ platforms: [plat] })])).violations).rule).toBe('binding-mismatch');
  });

  it('does not fire for a matching binding', () => {
    expect(evaluate(policy(), subject([container()])).violations).toEqual([]);
  });

  it('compares bindings in canonical form', () => {
    const plat = vaultPlatform(undefined, [vaultKey({ binding: 'Registry.Example:443/prod/api' })]);
    expect(evaluate(policy(), subject([container({ platforms: [plat] })])).violations).toEqual([]);
  });
});

describe('evaluate: protection follows the key', () => {
  it('judges a copy of a protected image in an unprotected repository by the rule of its binding, and refuses it', () => {
    // The attack: the protected image copied byte for byte into attacker/stolen, which no rule names.
    const d = evaluate(policy(), subject([container({ repository: 'registry.example/attacker/stolen', image: 'registry.example/attacker/stolen:1' })], { serviceAccount: 'x', namespace: 'dev' }));
    expect(d.protectedBy).toEqual({ api: 'registry.example/prod/**' });
    expect(d.violations.map((v) => v.rule).sort()).toEqual(['binding-mismatch', 'service-account-not-allowed']);
    const mismatch = d.violations.find((v) => v.rule === 'binding-mismatch')!;
    expect(mismatch.remedy).toContain('--bind registry.example/attacker/stolen');
  });

  it('protects an image with Vault keys that no rule names, refusing a binding to another repository', () => {
    const plat = vaultPlatform(undefined, [vaultKey({ key: 'transit/keys/other', binding: 'elsewhere.example/x' })]);
    const d = evaluate(policy(), subject([container({ repository: 'other.example/x', image: 'other.example/x:1', platforms: [plat] })]));
    expect(d.protectedBy).toEqual({ api: 'the Vault key binding elsewhere.example/x' });
    expect(only(d.violations).rule).toBe('binding-mismatch');
  });

  it('protects an image with Vault keys that no rule names, bound where it is pulled from (the check container decides)', () => {
    const plat = vaultPlatform(undefined, [vaultKey({ key: 'transit/keys/other', binding: 'other.example/x' })]);
    const d = evaluate(policy(), subject([container({ repository: 'other.example/x', image: 'other.example/x:1', platforms: [plat] })]));
    expect(d.protectedBy).toEqual({ api: 'the Vault key binding other.example/x' });
    expect(d.violations).toEqual([]);
  });

  it('judges a plaintext or jwe-only image by its name, as before', () => {
    const d = evaluate(policy(), subject([container({ repository: 'other.example/x', platforms: [jwePlatform()] }), container({ name: 'b', repository: 'other.example/y', platforms: [plainPlatform()] })]));
    expect(d.protectedBy).toEqual({});
    expect(d.violations).toEqual([]);
  });

  it('refuses a wrapped key whose version label was edited, and reads the version from the ciphertext', () => {
    const plat = vaultPlatform(undefined, [vaultKey({ version: 1, tampered: true })]);
    const p = policy({ repositories: [rule({ keys: [key({ minVersion: 2 })] })] });
    const rules = evaluate(p, subject([container({ platforms: [plat] })])).violations.map((v) => v.rule).sort();
    expect(rules).toEqual(['key-version-too-old', 'tampered-key']);
  });

  it('reports every broken rule of one image together', () => {
    const p = policy({ repositories: [rule({ keys: [key({ minVersion: 5, serviceAccounts: ['prod/api'] })] })] });
    const plat = vaultPlatform(undefined, [vaultKey({ version: 2, binding: 'registry.example/dev/api' })]);
    const d = evaluate(p, subject([container({ platforms: [plat] })], { serviceAccount: 'other' }));
    expect(d.violations.map((v) => v.rule)).toEqual(['key-version-too-old', 'service-account-not-allowed', 'binding-mismatch']);
  });
});

describe('evaluate: multi-platform images', () => {
  it('one bad platform fails the container, naming that platform only', () => {
    const d = evaluate(policy(), subject([container({ platforms: [vaultPlatform('linux/amd64'), plainPlatform('linux/arm64')] })]));
    expect(d.allowed).toBe(false);
    const v = only(d.violations);
    expect(v.rule).toBe('encryption-required');
    expect(v.message).toContain('linux/arm64');
    expect(v.message).not.toContain('linux/amd64');
  });

  it('checks keys on every platform', () => {
    const d = evaluate(policy(), subject([container({ platforms: [vaultPlatform('linux/amd64'), vaultPlatform('linux/arm64', [vaultKey({ key: 'transit/keys/dev' })])] })]));
    expect(only(d.violations)).toMatchObject({ rule: 'key-not-allowed' });
    expect(d.violations[0]!.message).toContain('linux/arm64');
  });

  it('reports a problem shared by several platforms once, naming them all', () => {
    const d = evaluate(policy(), subject([container({ platforms: [plainPlatform('linux/amd64'), plainPlatform('linux/arm64')] })]));
    const v = only(d.violations);
    expect(v.message).toContain('platforms linux/amd64, linux/arm64');
  });

  it('a service account problem on every platform is one violation', () => {
    const d = evaluate(policy(), subject([container({ platforms: [vaultPlatform('linux/amd64'), vaultPlatform('linux/arm64')] })], { namespace: 'dev', serviceAccount: 'x' }));
    expect(only(d.violations).rule).toBe('service-account-not-allowed');
  });

  it('keeps different problems on different platforms apart', () => {
    const p = policy({ repositories: [rule({ keys: [key({ minVersion: 2 })] })] });
    const d = evaluate(p, subject([container({ platforms: [vaultPlatform('linux/amd64', [vaultKey({ version: 1 })]), plainPlatform('linux/arm64')] })]));
    expect(d.violations.map((v) => v.rule)).toEqual(['key-version-too-old', 'encryption-required']);
    expect(d.violations[0]!.message).toContain('linux/amd64');
    expect(d.violations[1]!.message).toContain('linux/arm64');
  });
});

describe('evaluate: de-duplication', () => {
  it('the same image in two containers is reported per container', () => {
    const d = evaluate(policy(), subject([container({ name: 'a', platforms: [plainPlatform()] }), container({ name: 'b', platforms: [plainPlatform()] })]));
    expect(d.violations.map((v) => v.container)).toEqual(['a', 'b']);
  });

  it('identical violations within a container are reported once', () => {
    // The same key and version listed twice on the same platform (e.g. two layers) is one problem.
    const plat = vaultPlatform('linux/amd64', [vaultKey({ key: 'transit/keys/dev' }), vaultKey({ key: 'transit/keys/dev' })]);
    const d = evaluate(policy(), subject([container({ platforms: [plat, plat] })]));
    expect(only(d.violations).rule).toBe('key-not-allowed');
  });

  it('a duplicated platform entry does not repeat itself in the message', () => {
    const d = evaluate(policy(), subject([container({ platforms: [plainPlatform('linux/amd64'), plainPlatform('linux/amd64')] })]));
    expect(only(d.violations).message).not.toContain('platforms');
  });
});

describe('evaluate: modes', () => {
  const bad = (): AdmissionSubject => subject([container({ platforms: [plainPlatform()] })]);

  it('enforce denies a violation', () => {
    const d = evaluate(policy(), bad());
    expect(d.allowed).toBe(false);
    expect(d.mode).toBe('enforce');
  });

  it('warn allows, but still reports the violations', () => {
    const d = evaluate(policy({ mode: 'warn' }), bad());
    expect(d.allowed).toBe(true);
    expect(d.mode).toBe('warn');
    expect(only(d.violations).rule).toBe('encryption-required');
  });

  it('audit allows, but still reports the violations', () => {
    const d = evaluate(policy({ mode: 'audit' }), bad());
    expect(d.allowed).toBe(true);
    expect(d.mode).toBe('audit');
    expect(d.violations).toHaveLength(1);
  });

  it('is pure: the same input gives the same decision and is not modified', () => {
    const p = policy();
    const s = bad();
    const before = JSON.stringify([p, s]);
    expect(evaluate(p, s)).toEqual(evaluate(p, s));
    expect(JSON.stringify([p, s])).toBe(before);
  });
});
