import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ImagegateError } from '../errors.js';
import { afterCopy, StreamHash } from '../util/off-thread-hash.js';

/** A content digest such as `sha256:<64 hex>`; only algorithms the OCI spec registers are accepted. */
export type Digest = `${'sha256' | 'sha512'}:${string}`;

const ENCODED_LENGTH = { sha256: 64, sha512: 128 } as const;
const DIGEST_RE = /^(sha256|sha512):([a-f0-9]+)$/;

export function isDigest(s: string): s is Digest {
  const m = DIGEST_RE.exec(s);
  return m !== null && m[2]!.length === ENCODED_LENGTH[m[1] as keyof typeof ENCODED_LENGTH];
}

export function parseDigest(s: string, what = 'digest'): Digest {
  if (!isDigest(s)) {
    throw new ImagegateError('BAD_FORMAT', `${what} ${JSON.stringify(s)} is not a digest; expected "sha256:" and 64 lowercase hex digits`);
  }
  return s;
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.slice(0, d.indexOf(':')) as 'sha256' | 'sha512';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * A pass-through stream that hashes and counts what flows through it. After the stream ended, `digest()` and
 * `size` give the content's identity; both are computed on the way, never in a second pass.
 */
export class DigestingStream extends Transform {
  private readonly hash: StreamHash;
  private result: Digest | undefined;
  size = 0;

  constructor(private readonly algorithm: 'sha256' | 'sha512' = 'sha256') {
    super();
    this.hash = new StreamHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    afterCopy(this.hash.update(chunk), () => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.hash.digest().then((hex) => {
      this.result = `${this.algorithm}:${hex}`;
      cb();
    }, cb);
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.hash.close();
    cb(error);
  }

  digest(): Digest {
    if (this.result === undefined) throw new Error('DigestingStream.digest() called before the stream ended');
    return this.result;
  }
}

/**
 * A pass-through stream that fails at the end unless the content matches the expected digest and size, so a
 * consumer that commits only on success never commits corrupted or substituted content.
 */
export class VerifyingStream extends Transform {
  private readonly hash: StreamHash;
  private seen = 0;

  constructor(
    private readonly expected: { digest: Digest; size: number },
    private readonly what: string,
  ) {
    super();
    this.hash = new StreamHash(digestAlgorithm(expected.digest));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.expected.size) {
      cb(this.mismatch(`more than the ${this.expected.size} bytes its descriptor declares`));
      return;
    }
    afterCopy(this.hash.update(chunk), () => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.expected.size) {
      this.hash.close();
      cb(this.mismatch(`${this.seen} bytes, but its descriptor declares ${this.expected.size}`));
      return;
    }
    this.hash.digest().then((hex) => {
      const actual = `${digestAlgorithm(this.expected.digest)}:${hex}`;
      cb(actual === this.expected.digest ? undefined : this.mismatch(`content with digest ${actual}`));
    }, cb);
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.hash.close();
    cb(error);
  }

  private mismatch(detail: string): ImagegateError {
    return new ImagegateError(
      'DIGEST_MISMATCH',
      `${this.what} ${this.expected.digest} is corrupt or was replaced: read ${detail}; re-fetch or rebuild the image`,
    );
  }
}
