import { ImagegateError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';
import { JsonReader, quote } from './validate.js';

/** Where an image in an index runs. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** An OCI content descriptor. Unknown fields survive a read/write round trip through `extra`. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
  [extra: string]: unknown;
}

/** A layer descriptor's fields other than digest and size. */
export interface LayerDescription {
  mediaType: string;
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

export function readDescriptor(r: JsonReader): Descriptor {
  const o = r.object();
  const mediaType = r.field('mediaType').string();
  const digestText = r.field('digest').string();
  if (!isDigest(digestText)) return r.field('digest').fail(`must be "sha256:" and 64 lowercase hex digits, got ${quote(digestText)}`);
  const digest: Digest = digestText;
  const size = r.field('size').integer();
  if (size < 0) r.field('size').fail(`must not be negative, got ${size}`);
  const annotations = r.field('annotations').stringMap();
  const desc: Descriptor = { ...o, mediaType, digest, size };
  if (annotations !== undefined) desc.annotations = annotations;
  if (r.has('platform')) desc.platform = readPlatform(r.field('platform'));
  return desc;
}

function readPlatform(r: JsonReader): Platform {
  const o = r.object();
  return { ...o, architecture: r.field('architecture').string(), os: r.field('os').string() } as Platform;
}

/** `linux/amd64`, `linux/arm64/v8`: the form `--platform` takes and messages print. */
export function formatPlatform(p: Platform | undefined): string {
  if (p === undefined) return 'unknown platform';
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined && s !== '').join('/');
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new ImagegateError('USAGE', `--platform ${JSON.stringify(s)} must look like os/arch or os/arch/variant, e.g. linux/amd64`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** A platform filter matches when os and architecture match, and the variant too when the filter names one. */
export function platformMatches(filter: Platform, p: Platform | undefined): boolean {
  if (p === undefined) return false;
  if (filter.os !== p.os || filter.architecture !== p.architecture) return false;
  return filter.variant === undefined || filter.variant === p.variant;
}
