/**
 * Every failure imagegate reports is an ImagegateError with a stable `code`, a message that says what was
 * wrong and what to do, and an exit code class for the CLI. Messages never contain key material.
 */
export type ErrorCode =
  | 'USAGE' // a flag or argument is malformed
  | 'BAD_REFERENCE' // an image name or transport reference does not parse
  | 'BAD_FORMAT' // a manifest, index, config, layout or archive is malformed
  | 'NOT_FOUND' // an image, tag, blob or file does not exist
  | 'DIGEST_MISMATCH' // content does not match the digest or size that names it
  | 'UNSUPPORTED' // a valid input we do not handle (media type, cipher, transport)
  | 'BAD_KEY' // a key file cannot be used
  | 'NO_MATCHING_KEY' // none of the given keys unwraps a layer key
  | 'INTEGRITY' // HMAC verification of an encrypted layer failed
  | 'DESTINATION' // the destination cannot be written as asked
  | 'IO' // an operating-system level failure
  | 'AUTH' // a registry or Vault refused our credentials, or they lack a permission
  | 'REGISTRY' // a registry is unreachable, failing, or answered outside the protocol
  | 'VAULT' // Vault is unreachable, sealed or failing
  | 'INTERRUPTED'; // stopped by a signal (Ctrl-C)

/**
 * Verdicts of commands that judge rather than fail: a finding is not an error, and "could not decide" (a registry
 * that did not answer) must differ from "decided no", so CI can retry the one and fail on the other.
 */
export type Verdict =
  | 'FLAGGED' // `audit` flagged an image; `webhook review` denied an object; `rewrap` left a tag on the old image
  | 'UNDECIDED'; // `webhook review` could not decide an object (a look-up failed or timed out)

/** CLI exit codes, one per class of failure or verdict, so scripts can tell "fix your input" from "wrong key". */
export const EXIT_CODES: Readonly<Record<ErrorCode | Verdict, number>> = {
  USAGE: 2,
  BAD_REFERENCE: 2,
  BAD_FORMAT: 3,
  NOT_FOUND: 3,
  DIGEST_MISMATCH: 3,
  UNSUPPORTED: 3,
  BAD_KEY: 4,
  NO_MATCHING_KEY: 4,
  INTEGRITY: 5,
  DESTINATION: 6,
  IO: 6,
  AUTH: 7,
  REGISTRY: 8,
  VAULT: 9,
  FLAGGED: 10,
  UNDECIDED: 11,
  INTERRUPTED: 130,
};

/**
 * What a failure was about, kept as data when the error travels up (a layer's label, a key scheme, a key name), so
 * logs and metrics can label by them without parsing the message. Never key material.
 */
export interface ErrorFields {
  layer?: string;
  scheme?: string;
  key?: string;
}

export class ImagegateError extends Error {
  override readonly name = 'ImagegateError';
  readonly code: ErrorCode;
  /** True when the same request may succeed if tried again (a 503, a reset connection); retries look at this. */
  readonly temporary: boolean;
  readonly fields: Readonly<ErrorFields>;
  /**
   * A retry loop already gave up on this failure: it stays `temporary` (a later run may well succeed), but a retry
   * loop around that one must not try it again, which would multiply the tries (a copy's blob retry around a
   * registry request's).
   */
  readonly triesSpent: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; temporary?: boolean; fields?: ErrorFields; triesSpent?: boolean }) {
    super(message, options);
    this.code = code;
    this.temporary = options?.temporary ?? false;
    this.fields = options?.fields ?? {};
    this.triesSpent = options?.triesSpent ?? false;
  }

  /**
   * The same failure said of a wider context (`LAYER: …`, `… (tried 3 times)`): code, temporary flag and fields are
   * kept, new fields added, and this error becomes the cause.
   */
  within(message: (inner: string) => string, fields: ErrorFields = {}): ImagegateError {
    return new ImagegateError(this.code, message(this.message), { cause: this, temporary: this.temporary, fields: { ...this.fields, ...fields }, triesSpent: this.triesSpent });
  }

  /** The failure a retry loop ends with after `attempts` tries: says so, and is marked `triesSpent`. */
  afterTries(attempts: number): ImagegateError {
    return new ImagegateError(this.code, `${this.message} (tried ${attempts} times)`, { cause: this, temporary: this.temporary, fields: this.fields, triesSpent: true });
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export function isImagegateError(e: unknown, code?: ErrorCode): e is ImagegateError {
  return e instanceof ImagegateError && (code === undefined || e.code === code);
}

/** Node system errors carry `code` strings such as ENOENT; this reads one without a cast at every call site. */
export function systemErrorCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    return (e as { code: string }).code;
  }
  return undefined;
}
