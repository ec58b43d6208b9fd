import { createPublicKey, X509Certificate } from 'node:crypto';
import { absent, present } from '../../image/strict-document.js';
import { quote, type JsonReader } from '../../image/validate.js';
import { isVaultPathSegment } from '../transit-key.js';
import type { TokenLifetime } from './types.js';

/**
 * Readers for the field values a VaultSetup document uses (durations, mount paths, names, URLs, PEM blocks): each
 * returns the value or fails naming the field's JSON path and what it should be.
 */

// Kubernetes names: namespaces and service accounts (RFC 1123 subdomain, as ServiceAccount names allow).
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

export function lifetime(r: JsonReader, ttl: number, maxTtl: (ttl: number) => number): TokenLifetime {
  const t = r.field('tokenTtl');
  const m = r.field('tokenMaxTtl');
  const tokenTtl = absent(t) ? ttl : duration(t);
  if (tokenTtl === 0) t.fail('must be more than 0s');
  const token = { ttl: tokenTtl, maxTtl: absent(m) ? maxTtl(tokenTtl) : duration(m) };
  if (token.maxTtl < token.ttl) m.fail(`must be at least tokenTtl (${token.ttl}s), got ${quote(m.value)}`);
  return token;
}

/** Seconds, from Vault's duration forms: `720h`, `1h30m`, `30d`, `90s`, or a number of seconds. */
export function duration(r: JsonReader): number {
  if (typeof r.value === 'number' && Number.isSafeInteger(r.value) && r.value >= 0) return r.value;
  const m = typeof r.value === 'string' && r.value !== '' ? DURATION.exec(r.value) : null;
  if (m === null) r.fail(`must be a duration such as 10m, 720h or 30d (or whole seconds), got ${quote(r.value)}`);
  const [d, h, min, s] = m.slice(1).map((v) => Number(v ?? 0)) as [number, number, number, number];
  return ((d * 24 + h) * 60 + min) * 60 + s;
}

export function mountPath(r: JsonReader, fallback: string): string {
  if (absent(r)) return fallback;
  const text = r.string().replace(/\/+$/, '');
  if (!text.split('/').every(isVaultPathSegment)) r.fail(`must be a mount path of letters, digits, ".", "_" and "-" segments, got ${quote(r.value)}`);
  return text;
}

export function segment(r: JsonReader): string {
  const s = r.string();
  if (!isVaultPathSegment(s)) r.fail(`must be letters, digits, ".", "_" and "-", starting with a letter or digit, got ${quote(s)}`);
  return s;
}

export function uniqueName(r: JsonReader, seen: Set<string>): string {
  const name = segment(present(r, 'names the Vault role'));
  if (seen.has(name)) r.fail(`repeats role ${quote(name)}`);
  seen.add(name);
  return name;
}

function k8sName(r: JsonReader): string {
  const s = r.string();
  if (!K8S_NAME.test(s) || s.length > 253) r.fail(`must be a Kubernetes name (lower-case letters, digits, "-" and "."), got ${quote(s)}`);
  return s;
}

export function k8sNames(r: JsonReader): string[] {
  const names = r.array().map(k8sName);
  if (names.length === 0) r.fail('must list at least one name');
  return [...new Set(names)];
}

export function url(r: JsonReader): string {
  const s = r.string();
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return r.fail(`must be a URL, got ${quote(s)}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') r.fail(`must be an https:// URL, got ${quote(s)}`);
  return s;
}

/** A PEM block, checked with the platform's own parser: a public key (`key`) or CA certificates (`certificate`). */
export function pem(r: JsonReader, kind: 'key' | 'certificate'): string | undefined {
  if (absent(r)) return undefined;
  const s = r.string().trim();
  if (!/^-----BEGIN [A-Z ]+-----\n[\s\S]+\n-----END [A-Z ]+-----$/.test(s)) r.fail('must be a PEM block (-----BEGIN …----- … -----END …-----)');
  try {
    if (kind === 'key') createPublicKey(s);
    else for (const block of s.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [s]) new X509Certificate(block);
  } catch (e) {
    r.fail(`is not a PEM ${kind === 'key' ? 'public key' : 'certificate'} (${(e as Error).message})`);
  }
  return `${s}\n`;
}

export function nonEmpty(r: JsonReader): string {
  const s = r.string();
  if (s.trim() === '') r.fail('must not be empty');
  return s;
}

export function optionalNonEmpty(r: JsonReader): string | undefined {
  return absent(r) ? undefined : nonEmpty(r);
}
