import { canonicalBindingName } from '../image/reference.js';
import { globToRegExp, matchesAnyGlob } from '../util/glob.js';
import { readTransitKey, recipientFormOf } from '../vault/transit-key.js';
import type { AdmissionPolicy, AdmissionSubject, AllowedKey, ContainerFacts, Decision, PlatformImageFacts, RepositoryRule, Violation } from './types.js';

/** Why a namespace is not checked at all (exempt, or outside `namespaces.include`), or undefined when it is. */
export function namespaceNotInScope(policy: AdmissionPolicy, namespace: string): string | undefined {
  if (matchesAnyGlob(namespace, policy.namespaces.exempt)) return `namespace ${namespace} is exempt`;
  if (!matchesAnyGlob(namespace, policy.namespaces.include)) return `namespace ${namespace} is not in scope of the policy`;
  return undefined;
}

/** The first rule whose glob matches a canonical repository name (src/image/reference.ts canonicalRepository). */
export function ruleFor(policy: AdmissionPolicy, repository: string): RepositoryRule | undefined {
  return policy.repositories.find((r) => globToRegExp(r.match).test(repository));
}

/**
 * Whether admission must read an image's manifests. In the node model the runtime decrypts any imagegate image
 * whatever its name, so every image is read and one that cannot be read is refused. In the pod model the node
 * decrypts nothing: an image no rule protects by name runs as it is (an encrypted one fails to unpack), so it is
 * admitted without a registry call.
 */
export function needsLookUp(policy: AdmissionPolicy, repository: string): boolean {
  return policy.runtimeModel === 'node' || ruleFor(policy, repository) !== undefined;
}

/**
 * Decides whether a pod's images comply with the policy. Pure: everything it needs is in its arguments, and every
 * repository name in them is canonical.
 *
 * - A namespace outside `namespaces.include`, or inside `namespaces.exempt`, is not checked at all.
 * - Protection follows the key: an image whose layers carry Vault-wrapped keys is judged by the rule of the
 *   repository its keys are bound to, wherever it is pulled from, and is refused when that binding is not the
 *   repository it is pulled from. Such an image is protected even when no rule names it (the node can decrypt it).
 * - Other images are judged by the first rule whose `match` glob matches the repository they are pulled from;
 *   images no rule matches are not checked.
 * - Every platform of a protected container's image is checked (a pod may land on any node), and one bad
 *   platform is enough to refuse the container. A violation found on several platforms is reported once, naming them.
 * - In `warn` and `audit` modes the pod is allowed, but the violations are still reported.
 */
export function evaluate(policy: AdmissionPolicy, subject: AdmissionSubject): Decision {
  const { namespace } = subject;
  const notInScope = namespaceNotInScope(policy, namespace);
  if (notInScope !== undefined) return { allowed: true, mode: policy.mode, skipped: notInScope, violations: [], protectedBy: {} };

  const protectedBy: Record<string, string> = {};
  const found: Finding[] = [];
  const serviceAccount = `${namespace}/${subject.serviceAccount}`;
  for (const container of subject.containers) {
    const bindings = [...new Set(container.platforms.flatMap((p) => p.serviceKeys.map((k) => canonicalBindingName(k.binding))))];
    const rule = bindings.map((b) => ruleFor(policy, b)).find((r) => r !== undefined) ?? ruleFor(policy, container.repository);
    if (rule === undefined && bindings.length === 0) continue;
    protectedBy[container.name] = rule?.match ?? `the Vault key binding ${bindings.join(', ')}`;
    if (rule !== undefined) found.push(...ruleFindings(container, rule, serviceAccount));
    found.push(...checkVaultItems(container));
  }

  const violations = mergeFindings(found);
  return { allowed: violations.length === 0 || policy.mode !== 'enforce', mode: policy.mode, violations, protectedBy };
}

/**
 * A violation before platforms are merged: `message` holds {@link WHERE} where the image (and platforms) go, so the
 * same problem on linux/amd64 and linux/arm64 becomes one violation naming both.
 */
interface Finding {
  container: string;
  image: string;
  rule: string;
  message: string;
  remedy: string;
  platform: string | undefined;
}

const WHERE = '\u0000where\u0000';

/**
 * What `rule` finds wrong with a container's image on each platform: not encrypted, or wrapped with keys, key versions
 * or recipients it does not allow for the pod's service account.
 */
function ruleFindings(container: ContainerFacts, rule: RepositoryRule, serviceAccount: string): Finding[] {
  const out: Finding[] = [];
  const subject = `container ${container.name} (${WHERE})`;
  const add = (platform: string | undefined, id: string, message: string, remedy: string): void => {
    out.push({ container: container.name, image: container.image, rule: id, message, remedy, platform });
  };
  const repo = container.repository;
  const exampleKey = rule.keys[0] !== undefined ? shortKey(rule.keys[0].key) : 'KEY';
  const encryptRemedy =
    `encrypt it with \`imagegate encrypt PLAINTEXT_IMAGE docker://${repo}:TAG -r vault:${exampleKey}\`, ` +
    `then deploy the encrypted image`;

  if (container.platforms.length === 0 && rule.requireEncrypted) {
    // Fail closed: an image we know nothing about cannot be shown to be encrypted.
    add(undefined, 'encryption-required', `${subject}: no platform image was found to check, and repositories matching ${rule.match} must hold encrypted images`, encryptRemedy);
  }

  for (const p of container.platforms) {
    if (p.encryptedLayers === 0) {
      if (rule.requireEncrypted) {
        add(p.platform, 'encryption-required', `${subject}: no layer is encrypted (${p.layers} plaintext), and repositories matching ${rule.match} must hold encrypted images`, encryptRemedy);
      }
      // Nothing is wrapped, so there is no key to check.
      continue;
    }

    if (rule.keys.length > 0) checkKeys(p, rule, serviceAccount, subject, repo, (id, message, remedy) => add(p.platform, id, message, remedy));
  }
  return out;
}

/**
 * What every image carrying Vault-wrapped keys must satisfy, whichever rule (or none) judges it: keys bound to the
 * repository it is pulled from, and items whose version label matches the version Vault's ciphertext carries.
 */
function checkVaultItems(container: ContainerFacts): Finding[] {
  const out: Finding[] = [];
  const repo = container.repository;
  const subject = `container ${container.name} (${WHERE})`;
  for (const p of container.platforms) {
    for (const vk of p.serviceKeys) {
      const add = (rule: string, message: string, remedy: string): void => {
        out.push({ container: container.name, image: container.image, rule, message, remedy, platform: p.platform });
      };
      if (vk.tampered === true) {
        add(
          'tampered-key',
          `${subject}: a Vault-wrapped layer key of ${vk.key} is labelled with another key version than its Transit ciphertext (v${vk.version}); the annotation was edited after wrapping`,
          'do not run this image; have its publisher re-encrypt it, and find out who could write to the repository',
        );
      }
      if (canonicalBindingName(vk.binding) !== repo) {
        add(
          'binding-mismatch',
          `${subject}: its layer keys (${vk.key} v${vk.version}) are bound to ${vk.binding}, not to ${repo}, the repository it is pulled from`,
          `have an identity allowed to decrypt with ${vk.key} run \`imagegate rewrap docker://${repo} --bind ${repo}\` to bind the image to the repository it is deployed from`,
        );
      }
    }
  }
  return out;
}

function checkKeys(
  p: PlatformImageFacts,
  rule: RepositoryRule,
  serviceAccount: string,
  subject: string,
  repo: string,
  add: (id: string, message: string, remedy: string) => void,
): void {
  const allowedList = rule.keys.map((k) => k.key).join(', ');
  const reencrypt = (key: AllowedKey): string =>
    `encrypt the image with an allowed key: \`imagegate encrypt PLAINTEXT_IMAGE docker://${repo}:TAG -r vault:${shortKey(key.key)}\`, then deploy it`;
  const firstKey = rule.keys[0]!;

  // Keys count only beside a scheme whose keys a key service holds: facts that list keys without one are not trusted.
  const wrappedByService = p.schemes.length > p.offlineSchemes.length;
  if (!wrappedByService || p.serviceKeys.length === 0) {
    const how = wrappedByService
      ? 'name no readable Vault key'
      : p.offlineSchemes.length > 0
        ? `are wrapped only with ${p.offlineSchemes.join(', ')}, not with a Vault key`
        : 'are not wrapped with a Vault key';
    add('key-not-allowed', `${subject}: its encrypted layers ${how}; repositories matching ${rule.match} accept only ${allowedList}`, reencrypt(firstKey));
    return;
  }

  if (p.layersWithoutServiceKey > 0) {
    add(
      'key-not-allowed',
      `${subject}: ${p.layersWithoutServiceKey} of its ${p.encryptedLayers} encrypted layers are not wrapped with a Vault key; repositories matching ${rule.match} accept only ${allowedList}, on every encrypted layer`,
      reencrypt(firstKey),
    );
  }
  const others = p.offlineSchemes;
  if (rule.vaultOnly && others.length > 0) {
    add(
      'other-recipients',
      `${subject}: its layer keys are also wrapped with ${others.join(', ')}, which decrypts without asking Vault; repositories matching ${rule.match} accept Vault keys only`,
      `${reencrypt(firstKey)} with no other recipient, or set vaultOnly: false on the rule if those recipients are meant to decrypt outside the gate`,
    );
  }

  for (const vk of p.serviceKeys) {
    const allowed = rule.keys.find((k) => k.key === vk.key);
    if (allowed === undefined) {
      add(
        'key-not-allowed',
        `${subject}: its layers are wrapped with Vault key ${vk.key} v${vk.version}, which repositories matching ${rule.match} do not accept; allowed: ${allowedList}`,
        reencrypt(firstKey),
      );
      continue;
    }
    if (vk.version < allowed.minVersion) {
      add(
        'key-version-too-old',
        `${subject}: its layers are wrapped with ${vk.key} v${vk.version}, below the minimum version ${allowed.minVersion} the policy requires`,
        `run \`imagegate rewrap docker://${repo}\` to rewrap its layer keys with the latest version of ${vk.key} ` +
          `(rotate the key first if its latest version is below v${allowed.minVersion})`,
      );
    }
    if (!matchesAnyGlob(serviceAccount, allowed.serviceAccounts)) {
      const who = allowed.serviceAccounts.length > 0 ? `allowed: ${allowed.serviceAccounts.join(', ')}` : 'the policy allows no service account to use this key';
      add(
        'service-account-not-allowed',
        `${subject}: service account ${serviceAccount} may not run images wrapped with ${vk.key}; ${who}`,
        `run the pod under an allowed service account, or ask the policy owners to add ${serviceAccount} to the serviceAccounts of ${vk.key}`,
      );
    }
  }
}

/** Merges the same problem found on several platforms into one violation, and drops exact duplicates. */
function mergeFindings(found: readonly Finding[]): Violation[] {
  const groups = new Map<string, { first: Finding; platforms: (string | undefined)[] }>();
  for (const f of found) {
    const id = JSON.stringify([f.container, f.image, f.rule, f.message, f.remedy]);
    const g = groups.get(id);
    if (g === undefined) groups.set(id, { first: f, platforms: [f.platform] });
    else if (!g.platforms.includes(f.platform)) g.platforms.push(f.platform);
  }
  const out: Violation[] = [];
  const seen = new Set<string>();
  for (const { first, platforms } of groups.values()) {
    const named = platforms.filter((p): p is string => p !== undefined);
    const where = named.length === 0 ? first.image : `${first.image}, platform${named.length > 1 ? 's' : ''} ${named.join(', ')}`;
    const v: Violation = { container: first.container, image: first.image, rule: first.rule, message: first.message.split(WHERE).join(where), remedy: first.remedy };
    const key = JSON.stringify([v.container, v.rule, v.message]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(v);
  }
  return out;
}

/** `transit/keys/app` as `--recipient vault:` takes it: `transit/app`. */
function shortKey(key: string): string {
  const transitKey = readTransitKey(key);
  return transitKey === undefined ? key : recipientFormOf(transitKey);
}
