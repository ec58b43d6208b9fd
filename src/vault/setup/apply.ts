import { ImagegateError } from '../../errors.js';
import type { VaultSession } from '../vault-session.js';
import type { SetupItem, VaultValue } from './generate.js';
import { checkWritable } from './preflight.js';

/**
 * Brings a Vault server to the state a setup document describes, idempotently: `planSetup` reads what is there
 * (mounts, keys, policies, auth configs, roles) and decides per item, writing nothing; `applySetup` sends exactly the
 * writes the plan lists. A second run on the same document plans nothing but "unchanged".
 *
 * What is compared is what the document sets: a role's fields imagegate does not manage (e.g. `token_num_uses`) are
 * left as they are and are not reported. Some things Vault cannot undo are refused instead of planned: a Transit key
 * that is not derived (the repository binding needs a derived key's context), exportable, or of a type that cannot
 * wrap; a mount path already used by another engine or auth method.
 */

export type PlanAction = 'create' | 'update' | 'unchanged';

export interface PlanEntry {
  /** What the item is, e.g. `policy imagegate-ci-shop` or `role auth/jwt-github/role/shop`. */
  label: string;
  action: PlanAction;
  /** Why: what is created, or which fields differ (never a secret: nothing the document holds is one). */
  detail: string;
  /** The POSTs that bring the item to the document's state; none when unchanged. */
  writes: Array<{ path: string; body: Record<string, unknown> }>;
}

export interface SetupPlan {
  entries: PlanEntry[];
}

/** Key types whose derived keys can encrypt and decrypt (wrap layer keys) with a context. */
const WRAPPING_KEY_TYPES = ['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305'];

export async function planSetup(session: VaultSession, items: SetupItem[]): Promise<SetupPlan> {
  const vault: VaultState = {
    mounts: await mountTable(session, 'sys/mounts', 'list secrets engines'),
    auths: await mountTable(session, 'sys/auth', 'list auth methods'),
    creating: new Set<string>(),
  };
  const problems: PlanProblem[] = [];
  const entries: PlanEntry[] = [];
  for (const item of items) {
    const planned = await planItem(session, vault, item);
    if ('problems' in planned) problems.push(...planned.problems);
    else entries.push(planned);
  }
  if (problems.length > 0) {
    throw new ImagegateError(problems.some((p) => p.code === 'BAD_KEY') ? 'BAD_KEY' : 'USAGE', `vault setup: nothing was changed, because ${problems.map((p) => p.message).join('; and ')}`);
  }
  return { entries };
}

/** Something on the server the plan must not paper over; any one of them stops the whole run before a write. */
interface PlanProblem {
  code: 'BAD_KEY' | 'USAGE';
  message: string;
}

/** An item's entry in the plan, or why it cannot have one. */
type ItemPlan = PlanEntry | { problems: PlanProblem[] };

/** What the plan knows of the server: its secrets engines and auth methods (path → type), and the mounts it creates. */
interface VaultState {
  mounts: Map<string, string>;
  auths: Map<string, string>;
  /** Mounts this plan enables: nothing under them exists yet, so nothing is read there. */
  creating: Set<string>;
}

type ItemOf<K extends SetupItem['kind']> = Extract<SetupItem, { kind: K }>;

async function planItem(session: VaultSession, vault: VaultState, item: SetupItem): Promise<ItemPlan> {
  switch (item.kind) {
    case 'secrets-mount':
    case 'auth-mount':
      return planMount(vault, item);
    case 'transit-key':
      return planTransitKey(session, vault, item);
    case 'policy':
      return planPolicy(session, item);
    case 'auth-config':
    case 'role':
      return planAuthItem(session, vault, item);
  }
}

function planMount(vault: VaultState, item: ItemOf<'secrets-mount' | 'auth-mount'>): ItemPlan {
  const table = item.kind === 'secrets-mount' ? vault.mounts : vault.auths;
  const where = item.kind === 'secrets-mount' ? `sys/mounts/${item.path}` : `sys/auth/${item.path}`;
  const label = `${item.kind === 'secrets-mount' ? 'secrets engine' : 'auth method'} ${item.path}/`;
  const have = table.get(item.path);
  if (have === undefined) {
    vault.creating.add(item.path);
    return { label, action: 'create', detail: `enable ${item.type}`, writes: [{ path: where, body: { type: item.type, description: item.description } }] };
  }
  if (have !== item.type) {
    return { problems: [{ code: 'USAGE', message: `${item.path}/ is already a ${have} ${item.kind === 'secrets-mount' ? 'secrets engine' : 'auth method'}, not ${item.type}; choose another mount path in the setup document` }] };
  }
  return { label, action: 'unchanged', detail: `${item.type} is enabled`, writes: [] };
}

async function planTransitKey(session: VaultSession, vault: VaultState, item: ItemOf<'transit-key'>): Promise<ItemPlan> {
  const path = `${item.mount}/keys/${item.name}`;
  const label = `transit key ${path}`;
  const current = vault.creating.has(item.mount) ? undefined : await session.readIfPresent<{ data?: Record<string, unknown> }>(path, `read Transit key ${path}`);
  if (current?.data === undefined) {
    const rotate = item.autoRotatePeriod !== undefined ? { auto_rotate_period: item.autoRotatePeriod } : {};
    const rotation = item.autoRotatePeriod ? `, auto-rotate every ${formatSeconds(item.autoRotatePeriod)}` : '';
    return {
      label,
      action: 'create',
      detail: `aes256-gcm96, derived, not exportable, deletion not allowed${rotation}`,
      writes: [{ path, body: { type: 'aes256-gcm96', derived: true, exportable: false, allow_plaintext_backup: false, ...rotate } }],
    };
  }
  const d = current.data;
  const problems = transitKeyProblems(path, d);
  if (problems.length > 0) return { problems };
  const config: Record<string, unknown> = {};
  const why: string[] = [];
  if (d.deletion_allowed === true) {
    config.deletion_allowed = false;
    why.push('deletion_allowed true → false');
  }
  if (item.autoRotatePeriod !== undefined && Number(d.auto_rotate_period ?? 0) !== item.autoRotatePeriod) {
    config.auto_rotate_period = item.autoRotatePeriod;
    why.push(`auto_rotate_period ${formatSeconds(Number(d.auto_rotate_period ?? 0))} → ${formatSeconds(item.autoRotatePeriod)}`);
  }
  return why.length > 0
    ? { label, action: 'update', detail: why.join('; '), writes: [{ path: `${path}/config`, body: config }] }
    : { label, action: 'unchanged', detail: `${String(d.type ?? '')}, derived, version ${String(d.latest_version ?? '?')}`, writes: [] };
}

/** What makes an existing Transit key unfit to wrap layer keys, none of which Vault lets a key change later. */
function transitKeyProblems(path: string, d: Record<string, unknown>): PlanProblem[] {
  const problems: PlanProblem[] = [];
  const type = String(d.type ?? '');
  if (d.derived !== true) {
    problems.push({
      code: 'BAD_KEY',
      message:
        `${path} exists but is not derived; imagegate binds every wrapped layer key to its repository through a derived key's context, ` +
        'and derivation is fixed when a key is created. Create a new key (a new name in transit.keys; setup creates it derived), ' +
        're-encrypt the images wrapped with the old one, then delete it',
    });
  }
  if (!WRAPPING_KEY_TYPES.includes(type)) problems.push({ code: 'BAD_KEY', message: `${path} is a ${type} key; wrapping layer keys needs ${WRAPPING_KEY_TYPES.join(', ')}; create a new key` });
  if (d.exportable === true || d.allow_plaintext_backup === true) {
    problems.push({ code: 'BAD_KEY', message: `${path} is exportable or allows plaintext backups, which Vault can never turn off; its key material can leave Vault. Create a new key and re-encrypt` });
  }
  return problems;
}

async function planPolicy(session: VaultSession, item: ItemOf<'policy'>): Promise<ItemPlan> {
  const path = `sys/policies/acl/${item.name}`;
  const label = `policy ${item.name}`;
  const current = await session.readIfPresent<{ data?: { policy?: unknown } }>(path, `read policy ${item.name}`);
  const text = current?.data?.policy;
  const write = [{ path, body: { policy: item.hcl } }];
  if (typeof text !== 'string') return { label, action: 'create', detail: policySummary(item.hcl), writes: write };
  if (text !== item.hcl) return { label, action: 'update', detail: `text differs; now ${policySummary(item.hcl)}`, writes: write };
  return { label, action: 'unchanged', detail: policySummary(item.hcl), writes: [] };
}

/** An auth method's config or role: compared field by field with what Vault returns, for the fields the document sets. */
async function planAuthItem(session: VaultSession, vault: VaultState, item: ItemOf<'auth-config' | 'role'>): Promise<ItemPlan> {
  const mount = /^auth\/(.+)\/(?:config|role\/[^/]+)$/.exec(item.path)![1]!;
  const label = `${item.kind === 'role' ? 'role' : 'auth config'} ${item.path}`;
  const current = vault.creating.has(mount) ? undefined : await session.readIfPresent<{ data?: Record<string, unknown> }>(item.path, `read ${item.path}`);
  const write = [{ path: item.path, body: item.body }];
  if (current?.data === undefined) return { label, action: 'create', detail: item.summary, writes: write };
  const changed = Object.entries(item.body)
    .filter(([field, want]) => !sameValue(want, current.data![field]))
    .map(([field, want]) => describeChange(field, want, current.data![field]));
  return changed.length > 0 ? { label, action: 'update', detail: changed.join('; '), writes: write } : { label, action: 'unchanged', detail: item.summary, writes: [] };
}

/**
 * Sends the plan's writes in order, once {@link checkWritable} found the token may write every one of them; stops at
 * the first failure, saying so (what was written before it stays).
 */
export async function applySetup(session: VaultSession, plan: SetupPlan): Promise<void> {
  await checkWritable(session, plan.entries.flatMap((e) => e.writes.map((w) => w.path)));
  let written = 0;
  for (const entry of plan.entries) {
    for (const w of entry.writes) {
      try {
        await session.write(w.path, w.body, `${entry.action} ${entry.label}`);
      } catch (e) {
        if (!(e instanceof ImagegateError) || written === 0) throw e;
        throw e.within((m) => `${m} (the ${written} write(s) before it were applied; run setup again once this is fixed)`);
      }
      written++;
    }
  }
}

/** One line per item and a summary, e.g. `create     policy imagegate-ci-shop (update on transit/encrypt/shop)`. */
export function formatPlan(plan: SetupPlan, options: { dryRun: boolean; source: string }): string {
  const verb = (a: PlanAction): string => (options.dryRun ? { create: 'would create', update: 'would update', unchanged: 'unchanged' }[a] : { create: 'created', update: 'updated', unchanged: 'unchanged' }[a]);
  const width = Math.max(...(['create', 'update', 'unchanged'] as const).map((a) => verb(a).length));
  const lines = plan.entries.map((e) => `${verb(e.action).padEnd(width)}  ${e.label} (${e.detail})`);
  const count = (a: PlanAction): number => plan.entries.filter((e) => e.action === a).length;
  const created = count('create');
  const updated = count('update');
  const unchanged = count('unchanged');
  let summary: string;
  if (created + updated === 0) summary = `vault setup: nothing to change; all ${unchanged} items already match ${options.source}`;
  else if (options.dryRun) summary = `vault setup (dry run, nothing written): would create ${created}, update ${updated}; ${unchanged} unchanged`;
  else summary = `vault setup: created ${created}, updated ${updated}, ${unchanged} unchanged`;
  return `${[...lines, summary].join('\n')}\n`;
}

async function mountTable(session: VaultSession, path: string, what: string): Promise<Map<string, string>> {
  const res = await session.read<{ data?: Record<string, unknown> } & Record<string, unknown>>(path, what);
  const table = new Map<string, string>();
  for (const [key, value] of Object.entries(res.data ?? res)) {
    const type = (value as { type?: unknown } | null)?.type;
    if (key.endsWith('/') && typeof type === 'string') table.set(key.slice(0, -1), type);
  }
  return table;
}

/** Whether what Vault returned means the same as what the document asks for (lists and claim maps as sets). */
export function sameValue(want: VaultValue, have: unknown): boolean {
  if (typeof want === 'number') return Number(have ?? 0) === want;
  if (typeof want === 'boolean') return (have ?? false) === want;
  if (typeof want === 'string') return (typeof have === 'string' ? have : have == null ? '' : String(have)).trim() === want.trim();
  if (Array.isArray(want)) return sameSet(want, listOf(have));
  if (have !== null && have !== undefined && (typeof have !== 'object' || Array.isArray(have))) return false;
  const h = (have ?? {}) as Record<string, unknown>;
  const keys = new Set([...Object.keys(want), ...Object.keys(h)]);
  return [...keys].every((k) => sameSet(listOf(want[k]), listOf(h[k])));
}

function listOf(v: unknown): string[] {
  if (v === null || v === undefined || v === '') return [];
  if (Array.isArray(v)) return v.map((x) => String(x).trim());
  return [String(v).trim()];
}

function sameSet(a: string[], b: string[]): boolean {
  const x = [...new Set(a.map((s) => s.trim()))].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function describeChange(field: string, want: VaultValue, have: unknown): string {
  const short = (v: unknown): string | undefined => {
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (v === null || v === undefined || v === '') return '(none)';
    if (typeof v === 'string' && v.length <= 60 && !v.includes('\n')) return JSON.stringify(v);
    return undefined;
  };
  const from = short(have);
  const to = short(want);
  return from !== undefined && to !== undefined ? `${field} ${from} → ${to}` : `${field} differs`;
}

function policySummary(hcl: string): string {
  const grants = [...hcl.matchAll(/^path "([^"]+)" \{\n\s*capabilities = \[([^\]]*)\]/gm)].map((m) => `${m[2]!.replaceAll('"', '').replaceAll(', ', '+')} on ${m[1]}`);
  return grants.join(', ');
}

function formatSeconds(s: number): string {
  if (s === 0) return 'off';
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
