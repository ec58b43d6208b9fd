/** One item of a batch: its value, or the error that item alone failed with. */
export type ItemResult<T> = { ok: true; value: T } | { ok: false; error: Error };

interface Pending<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers single-item requests made in the same turn of the event loop into one batch per group, so code that
 * handles layers one at a time still costs one round trip per image. The batch runs on the next `setImmediate`.
 */
export class Coalescer<G, I, R> {
  private readonly groups = new Map<string, { group: G; pending: Array<Pending<I, R>> }>();
  private scheduled = false;

  constructor(private readonly run: (group: G, items: I[]) => Promise<Array<ItemResult<R>>>) {}

  /** Queues `item` in the batch for `group` (identified by `groupKey`) and resolves with its own result. */
  add(groupKey: string, group: G, item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let entry = this.groups.get(groupKey);
      if (entry === undefined) {
        entry = { group, pending: [] };
        this.groups.set(groupKey, entry);
      }
      entry.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batches = [...this.groups.values()];
    this.groups.clear();
    for (const { group, pending } of batches) {
      this.run(
        group,
        pending.map((p) => p.item),
      ).then(
        (results) => pending.forEach((p, i) => {
          const r = results[i];
          if (r === undefined) p.reject(new Error('batch answered fewer results than items'));
          else if (r.ok) p.resolve(r.value);
          else p.reject(r.error);
        }),
        (e: unknown) => pending.forEach((p) => p.reject(e)),
      );
    }
  }
}
