import { ImagegateError, type ErrorCode } from '../errors.js';
import type { JsonObject } from '../image/validate.js';
import { canonicalRepository, parseImageReference } from '../image/reference.js';
import { evaluate, namespaceNotInScope, needsLookUp, ruleFor } from '../policy/evaluate.js';
import type { AdmissionPolicy, ContainerFacts, Decision } from '../policy/types.js';
import { checkIsIntact } from '../pod-model/check-integrity.js';
import { CHECK_CONTAINER_NAME, IMAGEGATE_CONTAINER_PREFIX, forPod, keyAccessCheckContainer, tokenVolume, type CheckContainerSettings } from '../pod-model/injected-containers.js';
import { podPatch, type PlainBaseContainer, type PodMutation } from '../pod-model/pod-mutation.js';
import { objectsOf, podTemplateOf, type PodTemplate } from '../pod-model/workload.js';
import type { ResolvedImage } from './image-facts.js';
import { lookUpBudgetEnded, reviewBudgetMs } from './look-up-budget.js';
import { allow, deny, type AdmissionRequest, type AdmissionResponse } from './review.js';

export interface AdmissionContext {
  namespace: string;
  pullSecrets: string[];
  /** Aborted when the review's look-up budget ends: a look-up still running is cancelled. */
  signal?: AbortSignal;
}

export interface AdmissionDeps {
  policy: () => AdmissionPolicy;
  /** Resolves an image (cached); the webhook supplies registry credentials, including the pod's pull secrets. */
  resolve: (image: string, ctx: AdmissionContext) => Promise<ResolvedImage>;
  /** Time allowed for all look-ups of one review, well under the API server's webhook timeout (see reviewBudgetMs). */
  budgetMs: number;
  /** Node model: the init container that proves key access. */
  check?: CheckContainerSettings;
}

export interface AdmitOptions {
  /** The `timeout` the API server sent with the request: the look-up budget stays well inside it. */
  apiServerTimeoutMs?: number;
}

export interface AdmissionOutcome {
  response: AdmissionResponse;
  /** For metrics and logs: allowed, denied, warned (warn mode), audited (audit mode: logged only), skipped, error. */
  result: 'allowed' | 'denied' | 'warned' | 'audited' | 'skipped' | 'error';
  /** The rules behind a denial or warning. */
  rules: string[];
  /** Why the look-ups failed, when `result` is error: the ImagegateError code metrics and logs label it by. */
  code?: ErrorCode;
}

/**
 * Decides one AdmissionReview. The mutating hook (`mutate = true`) pins every image to its digest and, in the node
 * model, injects the key-access check; the validating hook re-checks the final object, including that the check was
 * not removed or altered. Both deny what the policy forbids, naming container, image, rule and remedy.
 */
export async function admit(req: AdmissionRequest, deps: AdmissionDeps, mutate: boolean, options: AdmitOptions = {}): Promise<AdmissionOutcome> {
  const skipped = (why: string): AdmissionOutcome => ({ response: allow(req.uid), result: 'skipped', rules: [why] });
  if (req.operation === 'DELETE' || req.operation === 'CONNECT') return skipped('operation');
  const found = podTemplateOf(req.kind.kind, req.object);
  if (found === undefined) return skipped('no pod template');
  // A label, an annotation or a scale changes no image: judging it again would refuse updates to pods admitted
  // before the webhook (or a policy change) existed. A pod's other fields that matter here cannot change.
  if (req.operation === 'UPDATE' && sameImages(found, podTemplateOf(req.kind.kind, req.oldObject))) return skipped('images unchanged');
  // The check container the webhook injected runs imagegate's own image; it is not the workload's to judge.
  const template = { ...found, containers: found.containers.filter((c) => !(c.name.startsWith(IMAGEGATE_CONTAINER_PREFIX) && c.image === deps.check?.image)) };
  if (template.containers.length === 0) return skipped('no containers');
  const policy = deps.policy();
  const isPod = req.kind.kind === 'Pod';
  // Exempt namespaces cost no registry call.
  const notInScope = namespaceNotInScope(policy, req.namespace);
  if (notInScope !== undefined) return skipped(notInScope);

  let named: NamedContainer[];
  try {
    named = template.containers.map((c) => ({ container: c, repository: canonicalImageRepository(c.name, c.image) }));
  } catch (e) {
    return { response: deny(req.uid, `imagegate: ${e instanceof Error ? e.message : String(e)}`), result: 'denied', rules: ['image-name'] };
  }
  // Only what may need protecting is looked up (every image in the node model); the rest is not pinned either.
  const lookedUp = named.filter((n) => needsLookUp(policy, n.repository));
  const judged: PodTemplate = { ...template, containers: lookedUp.map((n) => n.container) };

  let facts: ContainerFacts[];
  let resolved: Map<string, ResolvedImage>;
  const budgetMs = reviewBudgetMs(deps.budgetMs, options.apiServerTimeoutMs);
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(lookUpBudgetEnded(budgetMs)), budgetMs);
  try {
    ({ facts, resolved } = await resolveAll(judged, req.namespace, deps, budget.signal));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const code = isImagegateErrorCode(e) ?? 'REGISTRY';
    // warn and audit modes enforce nothing, a failed look-up included: rolling the webhook out must block no pod.
    if (policy.mode !== 'enforce') {
      const warning = `imagegate could not check the images (${policy.mode} mode, so nothing is refused): ${why}`;
      return { response: allow(req.uid, policy.mode === 'warn' ? { warnings: [warning] } : {}), result: 'error', rules: ['resolve'], code };
    }
    // `open` may let a pod through only where protection is known to be absent: the pod model, no rule matching.
    const unprotected = policy.runtimeModel === 'pod' && lookedUp.every((n) => ruleFor(policy, n.repository) === undefined);
    if (policy.failurePolicy === 'open' && unprotected) {
      return { response: allow(req.uid, { warnings: [`imagegate could not check the images and let this through (failurePolicy: open): ${why}`] }), result: 'error', rules: ['resolve'], code };
    }
    const because = policy.runtimeModel === 'node' ? 'every image must be checked in the node runtime model' : `failurePolicy: ${policy.failurePolicy}`;
    return { response: deny(req.uid, `imagegate could not check the images, so it refuses (${because}): ${why}`, 'InternalError', 500), result: 'error', rules: ['resolve'], code };
  } finally {
    clearTimeout(timer);
  }

  const decision = evaluate(policy, { namespace: req.namespace, serviceAccount: template.serviceAccount, containers: facts });
  if (decision.skipped !== undefined) return skipped(decision.skipped);
  const rules = [...new Set(decision.violations.map((v) => v.rule))];
  if (!decision.allowed) return { response: deny(req.uid, denialMessage(decision)), result: 'denied', rules };
  // warn mode tells the user (kubectl prints warnings); audit mode only records, in logs and metrics.
  const warnings = decision.mode === 'warn' ? decision.violations.map((v) => `${v.message} (${v.rule}; ${v.remedy})`) : [];
  const passed: AdmissionOutcome['result'] = decision.violations.length === 0 ? 'allowed' : decision.mode === 'audit' ? 'audited' : 'warned';
  const protectedImages = facts.filter((f) => decision.protectedBy[f.name] !== undefined && f.platforms.some((p) => p.encryptedLayers > 0));
  // The Vault role may name the pod's identity ({namespace}, {serviceAccount}): one role per team, as vault setup makes.
  // The policy says which loopback registries imagegate's containers may reach over plain HTTP.
  const check = deps.check !== undefined ? { ...forPod(deps.check, req.namespace, template.serviceAccount), insecureRegistries: policy.insecureRegistries } : undefined;
  const needsCheck = isPod && policy.runtimeModel === 'node' && check !== undefined && protectedImages.length > 0;

  if (!mutate) {
    if (needsCheck) {
      const images = checkedImages(protectedImages);
      // kubectl debug adds an ephemeral container to a pod whose check ran at its creation, for its images only.
      const uncovered = uncheckedEphemeralImages(template.spec, protectedImages);
      if (uncovered !== undefined) {
        return { response: deny(req.uid, `imagegate: ${uncovered}; run it in a new pod, whose check covers it (node runtime model)`), result: 'denied', rules: ['check-container'] };
      }
      const broken = checkIsIntact(template.spec, keyAccessCheckContainer(check!, images), tokenVolume(check!));
      if (broken !== undefined) {
        return { response: deny(req.uid, `imagegate: ${broken}; pods running protected images must keep it as the webhook injected it (node runtime model)`), result: 'denied', rules: ['check-container'] };
      }
    }
    return { response: allow(req.uid, warnings.length > 0 ? { warnings } : {}), result: passed, rules };
  }

  // Pod model: protected, encrypted images run as their plaintext base, with the rest unpacked by imagegate init.
  const podModel = isPod && policy.runtimeModel === 'pod' && check !== undefined ? protectedImages : [];
  for (const f of podModel) {
    const image = resolved.get(f.image);
    if (f.list !== 'containers' || image?.pod === undefined) {
      const why = f.list !== 'containers' ? `${f.list} cannot run encrypted images in the pod model` : (image?.podProblem ?? 'it was not encrypted for the pod model');
      return {
        response: deny(req.uid, `imagegate: container ${f.name} (${f.image}): ${why}; encrypt it with --plain-base BASE --paths …, or use the node model`),
        result: 'denied',
        rules: ['pod-model'],
      };
    }
  }
  // Workloads get early feedback only; their pods are mutated when they are created.
  // Containers the pod model swaps to their base are not pinned to the encrypted image first.
  const swapped = new Set(podModel.map((f) => f.name));
  // The check is placed when a pod is created; an UPDATE cannot change init containers, so one that changes a
  // protected image is left to the validating hook, whose message says why. A check the pod brought, or ours moved
  // by a later webhook (on re-invocation), is replaced by ours, first.
  const placeCheck = needsCheck && req.operation === 'CREATE';
  const patch = isPod
    ? podPatch(req.kind.kind, req.object!, {
        images: pinnedImages(judged, facts, swapped),
        ...(placeCheck ? { check: { container: keyAccessCheckContainer(check!, checkedImages(protectedImages)), volume: tokenVolume(check!) } } : {}),
        ...(podModel.length > 0 ? { plainBase: { containers: plainBaseContainers(template, podModel, resolved), settings: check! } } : {}),
      })
    : [];
  const extra: Partial<AdmissionResponse> = warnings.length > 0 ? { warnings } : {};
  if (patch.length > 0) {
    extra.patchType = 'JSONPatch';
    extra.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  }
  return { response: allow(req.uid, extra), result: passed, rules };
}

/**
 * The images the check proves access to: each protected image pinned by digest, spelled as the pod spells it (the
 * name the runtime pulls, port and all).
 */
function checkedImages(protectedImages: ContainerFacts[]): string[] {
  return [...new Set(protectedImages.map((f) => pinnedName(f.image, f.digest)))];
}

/**
 * Why an ephemeral container is not covered by the pod's check: its protected image is not among the images the
 * check (fixed when the pod was created) proved, or undefined. A pod without a check is left to checkIsIntact.
 */
function uncheckedEphemeralImages(spec: JsonObject, protectedImages: ContainerFacts[]): string | undefined {
  const existing = objectsOf(spec, 'initContainers').find((c) => c.name === CHECK_CONTAINER_NAME);
  if (existing === undefined) return undefined;
  const proved = new Set(Array.isArray(existing.args) ? (existing.args as unknown[]) : []);
  const missing = protectedImages.filter((f) => f.list === 'ephemeralContainers' && !proved.has(`docker://${pinnedName(f.image, f.digest)}`));
  if (missing.length === 0) return undefined;
  return missing.map((f) => `ephemeral container ${f.name} adds protected image ${f.image}, which the pod's ${CHECK_CONTAINER_NAME} (fixed when the pod was created) does not cover`).join('; ');
}

function sameImages(now: PodTemplate, before: PodTemplate | undefined): boolean {
  if (before === undefined) return false;
  const images = (t: PodTemplate): string => JSON.stringify(t.containers.map((c) => [c.list, c.name, c.image]));
  return images(now) === images(before);
}

/** Resolves every image once, however many containers use it. */
async function resolveAll(template: PodTemplate, namespace: string, deps: AdmissionDeps, signal: AbortSignal): Promise<{ facts: ContainerFacts[]; resolved: Map<string, ResolvedImage> }> {
  const ctx = { namespace, pullSecrets: template.imagePullSecrets, signal };
  const byImage = new Map<string, Promise<ResolvedImage>>();
  for (const c of template.containers) {
    if (!byImage.has(c.image)) byImage.set(c.image, deps.resolve(c.image, ctx));
  }
  // Settle every look-up before failing on one, so no rejection is left unhandled (it would stop the process). The
  // budget ends the wait even where a look-up ignores its signal.
  const images = [...byImage.keys()];
  const ended = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  ended.catch(() => {});
  const settled = await Promise.race([Promise.allSettled(images.map((i) => byImage.get(i)!)), ended]);
  const resolved = new Map<string, ResolvedImage>();
  settled.forEach((r, i) => {
    const image = images[i]!;
    if (r.status === 'fulfilled') {
      resolved.set(image, r.value);
      return;
    }
    const users = template.containers.filter((c) => c.image === image).map((c) => c.name).join(', ');
    const why = r.reason instanceof Error ? r.reason.message : String(r.reason);
    throw new ImagegateError(isImagegateErrorCode(r.reason) ?? 'REGISTRY', `image ${image} (container ${users}): ${why}`);
  });
  const facts = template.containers.map((c) => {
    const r = resolved.get(c.image)!;
    return { list: c.list, name: c.name, image: c.image, repository: r.repository, digest: r.digest, platforms: r.platforms };
  });
  return { facts, resolved };
}

function isImagegateErrorCode(e: unknown): ImagegateError['code'] | undefined {
  return e instanceof ImagegateError ? e.code : undefined;
}

interface NamedContainer {
  container: PodTemplate['containers'][number];
  /** Its image's repository in canonical form: what rules and bindings are compared with. */
  repository: string;
}

function canonicalImageRepository(container: string, image: string): string {
  if (image === '') throw new ImagegateError('BAD_FORMAT', `container ${container} names no image`);
  try {
    return canonicalRepository(parseImageReference(image));
  } catch (e) {
    throw new ImagegateError('BAD_REFERENCE', `container ${container}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function denialMessage(d: Decision): string {
  // Each message already names its container and image.
  const lines = d.violations.map((v) => `${v.message} [rule ${v.rule}] — ${v.remedy}`);
  return `imagegate denied this pod:\n${lines.join('\n')}`;
}

/** The containers whose image is pinned to the digest judged; those the pod model swaps to their base are not. */
function pinnedImages(template: PodTemplate, facts: ContainerFacts[], swapped: Set<string>): PodMutation['images'] {
  return template.containers.flatMap((c, i) => {
    if (c.list === 'containers' && swapped.has(c.name)) return [];
    const pinned = pinnedName(c.image, facts[i]!.digest);
    return pinned === c.image ? [] : [{ list: c.list, index: c.index, image: pinned }];
  });
}

/** `registry/app:1` → `registry/app@sha256:…`; an image already pinned to that digest is left as written. */
export function pinnedName(image: string, digest: string): string {
  if (image.endsWith(`@${digest}`)) return image;
  const name = image.includes('@') ? image.slice(0, image.indexOf('@')) : image.replace(/:[^:/]+$/, '');
  return `${name}@${digest}`;
}

/** Pod model: the protected containers, each with its encrypted image by digest and what its encryptor recorded. */
function plainBaseContainers(template: PodTemplate, containers: ContainerFacts[], resolved: Map<string, ResolvedImage>): PlainBaseContainer[] {
  return containers.map((f) => {
    const c = template.containers.find((x) => x.list === 'containers' && x.name === f.name)!;
    return { index: c.index, name: f.name, image: `${f.repository}@${f.digest}`, facts: resolved.get(f.image)!.pod! };
  });
}
