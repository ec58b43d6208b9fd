import { ImagegateError } from '../errors.js';
import type { ItemResult } from '../util/coalesce.js';
import { formatTransitKey, type TransitKey } from './transit-key.js';
import { vaultError } from './vault-error.js';
import type { VaultSession } from './vault-session.js';

export interface WrappedByTransit {
  /** `vault:v3:…` */
  ciphertext: string;
  keyVersion: number;
}

export interface TransitKeyInfo {
  latestVersion: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  derived: boolean;
  type: string;
}


interface BatchItemResponse {
  ciphertext?: string;
  plaintext?: string;
  key_version?: number;
  error?: string;
}

/**
 * Transit encrypt, decrypt and rewrap with `batch_input`: one round trip for however many layer keys an image
 * has. Each item carries a `context` (the keys are `derived`), which binds a wrapped key to its repository.
 */
export class Transit {
  constructor(readonly session: VaultSession) {}

  /** Items without a `context` are only for keys that are not derived (see derived-key.ts, which probes with one). */
  async encrypt(key: TransitKey, items: Array<{ plaintext: Buffer; context?: Buffer }>): Promise<Array<ItemResult<WrappedByTransit>>> {
    const path = `${key.mount}/encrypt/${key.name}`;
    const batch = items.map((i) => ({ plaintext: i.plaintext.toString('base64'), ...contextField(i.context) }));
    const results = await this.batch(path, batch, `wrap ${items.length} layer key(s) with ${formatTransitKey(key)}`);
    return results.map((r) => (r.ok ? wrapped(r.value, path) : r));
  }

  async decrypt(key: TransitKey, items: Array<{ ciphertext: string; context?: Buffer }>): Promise<Array<ItemResult<Buffer>>> {
    const path = `${key.mount}/decrypt/${key.name}`;
    const batch = items.map((i) => ({ ciphertext: i.ciphertext, ...contextField(i.context) }));
    // Some items failing is an expected answer (derived-key.ts adds one that must fail): say so with 200, not 400,
    // so Vault's request metrics do not count every unwrap as a client error.
    const results = await this.batch(path, batch, `unwrap ${items.length} layer key(s) with ${formatTransitKey(key)}`, { partial_failure_response_code: 200 });
    return results.map((r) => {
      if (!r.ok) return r;
      if (typeof r.value.plaintext !== 'string') return { ok: false, error: new ImagegateError('VAULT', `Vault answered ${path} without a plaintext`) };
      return { ok: true, value: Buffer.from(r.value.plaintext, 'base64') };
    });
  }

  /** Moves ciphertexts to the key's latest version (or `keyVersion`); the plaintext never leaves Vault. */
  async rewrap(key: TransitKey, items: Array<{ ciphertext: string; context: Buffer }>, keyVersion?: number): Promise<Array<ItemResult<WrappedByTransit>>> {
    const path = `${key.mount}/rewrap/${key.name}`;
    const batch = items.map((i) => ({ ciphertext: i.ciphertext, context: i.context.toString('base64'), ...(keyVersion !== undefined ? { key_version: keyVersion } : {}) }));
    const results = await this.batch(path, batch, `rewrap ${items.length} layer key(s) with ${formatTransitKey(key)}`);
    return results.map((r) => (r.ok ? wrapped(r.value, path) : r));
  }

  async readKey(key: TransitKey): Promise<TransitKeyInfo> {
    const path = `${key.mount}/keys/${key.name}`;
    const res = await this.session.read<{ data?: Record<string, unknown> }>(path, `read Transit key ${formatTransitKey(key)}`);
    const d = res.data ?? {};
    return {
      latestVersion: Number(d.latest_version ?? 0),
      minDecryptionVersion: Number(d.min_decryption_version ?? 1),
      minEncryptionVersion: Number(d.min_encryption_version ?? 0),
      derived: d.derived === true,
      type: String(d.type ?? ''),
    };
  }

  private async batch(path: string, batchInput: Array<Record<string, unknown>>, what: string, extra: Record<string, unknown> = {}): Promise<Array<ItemResult<BatchItemResponse>>> {
    if (batchInput.length === 0) return [];
    let results: unknown;
    try {
      const res = await this.session.write<{ data?: { batch_results?: unknown } }>(path, { ...extra, batch_input: batchInput }, what);
      results = res.data?.batch_results;
    } catch (e) {
      // A partial failure is a 400 whose body still has every item's result.
      const cause = (e as { cause?: { response?: { body?: { data?: { batch_results?: unknown } } } } }).cause;
      results = cause?.response?.body?.data?.batch_results;
      if (!Array.isArray(results)) throw e;
    }
    if (!Array.isArray(results) || results.length !== batchInput.length) {
      throw new ImagegateError('VAULT', `${what}: Vault at ${this.session.address} answered ${path} with ${Array.isArray(results) ? results.length : 'no'} results for ${batchInput.length} items`);
    }
    return (results as BatchItemResponse[]).map((r) =>
      typeof r.error === 'string' && r.error !== ''
        ? { ok: false, error: vaultError({ response: { statusCode: 400, body: { errors: [r.error] } } }, { path, what, address: this.session.address }) }
        : { ok: true, value: r },
    );
  }
}

function contextField(context: Buffer | undefined): { context?: string } {
  return context !== undefined ? { context: context.toString('base64') } : {};
}

function wrapped(r: BatchItemResponse, path: string): ItemResult<WrappedByTransit> {
  if (typeof r.ciphertext !== 'string' || !r.ciphertext.startsWith('vault:v')) {
    return { ok: false, error: new ImagegateError('VAULT', `Vault answered ${path} without a ciphertext`) };
  }
  return { ok: true, value: { ciphertext: r.ciphertext, keyVersion: r.key_version ?? versionOf(r.ciphertext) } };
}

/** `vault:v3:…` → 3. */
export function versionOf(ciphertext: string): number {
  const m = /^vault:v(\d+):/.exec(ciphertext);
  return m !== null ? Number(m[1]) : 0;
}
