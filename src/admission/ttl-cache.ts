/**
 * A bounded cache with a time to live, a shorter one for failures, and de-duplication of concurrent look-ups: the
 * webhook resolves an image once however many containers or requests ask for it at the same moment, and a registry
 * that failed is asked again soon rather than never or on every request.
 */
export interface TtlCacheOptions {
  maxEntries: number;
  ttlMs: number;
  /** How long a failure is remembered. */
  negativeTtlMs: number;
  /** Failures that say nothing about the key (a look-up cancelled by its caller) are forgotten at once. */
  forgets?: (error: unknown) => boolean;
  now?: () => number;
}

interface Entry<V> {
  expires: number;
  value: Promise<V>;
}

export class TtlCache<V> {
  hits = 0;
  misses = 0;
  private readonly entries = new Map<string, Entry<V>>();
  private readonly now: () => number;

  constructor(private readonly options: TtlCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value for `key`, or `load()`'s, shared with every caller that asks while it runs. */
  get(key: string, load: () => Promise<V>): Promise<V> {
    const now = this.now();
    const hit = this.entries.get(key);
    if (hit !== undefined && hit.expires > now) {
      this.hits++;
      // Refresh the recency for LRU eviction.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value;
    }
    this.misses++;
    const entry: Entry<V> = { expires: Infinity, value: load() };
    entry.value.then(
      () => (entry.expires = this.now() + this.options.ttlMs),
      (e: unknown) => {
        if (this.options.forgets?.(e) === true) {
          if (this.entries.get(key) === entry) this.entries.delete(key);
          return;
        }
        entry.expires = this.now() + this.options.negativeTtlMs;
      },
    );
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return entry.value;
  }
}
