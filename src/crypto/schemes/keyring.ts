import type { LoadedKey } from '../key-files.js';

/** A typed place on the keyring for one scheme's service session; the scheme that owns it declares it. */
export interface KeyringSlot<T> {
  readonly scheme: string;
  /** Only for typing: a slot holds a T. */
  readonly _type?: T;
}

export function keyringSlot<T>(scheme: string): KeyringSlot<T> {
  return { scheme };
}

/**
 * What this process can unwrap (and wrap) layer keys with, ocicrypt's DecryptConfig: private key files (`--key`),
 * sessions with key services by scheme (a Transit session), and the repository the image is read from, which schemes
 * that bind keys to a repository check. Sessions are opened on first use, so a command that never meets a Vault-wrapped
 * key never logs in.
 */
export class Keyring {
  private readonly sessions = new Map<string, () => Promise<unknown>>();

  constructor(
    readonly privateKeys: readonly LoadedKey[] = [],
    /** Canonical `HOST/PATH` the image is read from; undefined off-registry (then an item's own binding is used). */
    readonly repository?: string,
  ) {}

  /** Makes a session available, opened by `open` the first time a scheme asks for it. */
  provide<T>(slot: KeyringSlot<T>, open: () => Promise<T>): this {
    let opened: Promise<T> | undefined;
    this.sessions.set(slot.scheme, () => (opened ??= open()));
    return this;
  }

  has(slot: KeyringSlot<unknown>): boolean {
    return this.sessions.has(slot.scheme);
  }

  /** Opens every session provided now, so bad settings (no VAULT_ADDR) fail before any image is read. */
  async openAll(): Promise<this> {
    await Promise.all([...this.sessions.values()].map((open) => open()));
    return this;
  }

  /** Whether any key-service session was provided (a keyring can then unwrap without key files). */
  hasSessions(): boolean {
    return this.sessions.size > 0;
  }

  /** The session, opened now if it was not yet; undefined when none was provided. */
  async session<T>(slot: KeyringSlot<T>): Promise<T | undefined> {
    const open = this.sessions.get(slot.scheme);
    return open === undefined ? undefined : ((await open()) as T);
  }

  /** The same keyring for another repository: same keys, same sessions (shared, not reopened). */
  forRepository(repository: string | undefined): Keyring {
    return this.copy(this.privateKeys, repository);
  }

  /** The sessions alone, no key files: what proves access through a key service, which a key file would bypass. */
  sessionsOnly(): Keyring {
    return this.copy([], this.repository);
  }

  private copy(privateKeys: readonly LoadedKey[], repository: string | undefined): Keyring {
    const copy = new Keyring(privateKeys, repository);
    for (const [scheme, open] of this.sessions) copy.sessions.set(scheme, open);
    return copy;
  }
}
