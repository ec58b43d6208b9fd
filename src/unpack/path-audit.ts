import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { ImagegateError } from '../errors.js';
import { claimChunk } from '../util/chunk-release.js';
import { isAncestorOf, isWithin, normalizeEntryName } from './layer-paths.js';

/**
 * Passes a layer through unchanged while reading its tar entries on the side, and fails at the end if any entry
 * writes (or whites out) a path outside `paths`. Used when encrypting for the pod model: the layers that will be
 * unpacked into volumes at those paths must not need anything else, and must not delete files of the plaintext base.
 */
export class LayerPathAudit extends Transform {
  private readonly inner = new PassThrough();
  private readonly done: Promise<void>;
  private violation: string | undefined;

  constructor(
    private readonly paths: readonly string[],
    private readonly label: string,
    gzip: boolean,
  ) {
    super();
    const tar = extract();
    const stages: NodeJS.ReadWriteStream[] = gzip ? [createGunzip()] : [];
    const reading = pipeline([this.inner, ...stages, tar as unknown as NodeJS.WritableStream]);
    const listing = (async () => {
      for await (const entry of tar) {
        this.check(entry.header.name, entry.header.type ?? 'file');
        entry.resume();
      }
    })();
    this.done = Promise.all([reading, listing]).then(() => undefined);
    // Failures are reported at the end, with the layer's own error if it has one.
    this.done.catch(() => {});
  }

  private check(name: string, type: string): void {
    if (this.violation !== undefined) return;
    let rel: string;
    try {
      rel = normalizeEntryName(name, this.label);
    } catch (e) {
      this.violation = (e as Error).message;
      return;
    }
    if (rel === '') return;
    const base = rel.split('/').pop()!;
    const target = base.startsWith('.wh.') && base !== '.wh..wh..opq' ? rel.replace(/\.wh\.([^/]*)$/, '$1') : rel;
    const allowed = isWithin(target, this.paths) || (type === 'directory' && isAncestorOf(rel, this.paths));
    if (!allowed) {
      const what = target !== rel ? `deletes ${JSON.stringify(target)}` : `writes ${JSON.stringify(rel)}`;
      this.violation = `${this.label} ${what}, outside the declared paths (${this.paths.join(', ')}); in the pod model encrypted layers may only write there (and may not delete files of the plaintext base)`;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // Read here after it was passed on (by gunzip and tar, later): nobody downstream may free it (chunk-release.ts).
    claimChunk(chunk);
    this.push(chunk);
    if (this.inner.write(chunk)) cb();
    else this.inner.once('drain', () => cb());
  }

  override _flush(cb: TransformCallback): void {
    this.inner.end();
    this.done.then(
      () => cb(this.violation !== undefined ? new ImagegateError('USAGE', this.violation) : null),
      (e: unknown) => cb(new ImagegateError('BAD_FORMAT', `${this.label}: cannot read its entries (${e instanceof Error ? e.message : String(e)})`)),
    );
  }
}
