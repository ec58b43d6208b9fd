import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ImagegateError } from '../errors.js';

/**
 * SHA-256 (or HMAC-SHA256) of a large stream on another thread. A layer copy hashes every byte three times (the
 * source's digest is verified, the ciphertext's HMAC computed or checked, the output's digest computed) beside
 * AES-CTR, which is about 15 times faster than any of them; moving the hashes to workers lets one layer use both cores
 * instead of one.
 *
 * Bytes travel through a shared ring: the caller copies a chunk in (a memcpy, about 20 times cheaper than hashing it)
 * and may pass the chunk on at once; the worker hashes it from the ring and hands the space back. One ring per thread,
 * shared by its streams in slots, bounds the bytes in flight, so memory stays flat however large or many the layers are.
 *
 * Small content (manifests, configs) never starts a thread: the first INLINE_LIMIT bytes are hashed here and kept,
 * and only a stream that grows past them moves to a worker, which re-hashes the kept head from the start.
 */
export const INLINE_LIMIT = 1024 * 1024;
const RING_BYTES = 2 * 1024 * 1024;
/**
 * The ring is handed out in slots: a stream fills one slot and sends it to the worker whole, so a registry body's
 * 64 KiB chunks cost one message per 256 KiB instead of one each (a 1 GiB pull sent some 49,000 before). Several
 * streams share a thread, so each fills its own slot rather than a run of the ring that another stream would break.
 */
const SLOT_BYTES = 256 * 1024;
const SLOTS = RING_BYTES / SLOT_BYTES;
const MAX_WORKERS = 2;

/** The worker's whole program (CommonJS, as eval workers are): one hash per open stream, fed from its ring. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash, createHmac } = require('node:crypto');
const streams = new Map();
let ring;
parentPort.on('message', (m) => {
  if (m.op === 'ring') {
    ring = new Uint8Array(m.ring);
  } else if (m.op === 'open') {
    const hash = m.key === undefined ? createHash(m.algorithm) : createHmac(m.algorithm, m.key);
    if (m.key !== undefined) m.key.fill(0);
    streams.set(m.id, hash);
  } else if (m.op === 'update') {
    // A stream closed early may still have pieces on the way; they only hand their space back.
    streams.get(m.id)?.update(ring.subarray(m.start, m.start + m.length));
    parentPort.postMessage({ op: 'consumed', id: m.id, slot: m.slot });
  } else if (m.op === 'digest') {
    const hash = streams.get(m.id);
    streams.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, hex: hash.digest('hex') });
  } else if (m.op === 'close') {
    streams.delete(m.id);
  }
});
`;

type WorkerReply = { op: 'consumed'; id: number; slot: number } | { op: 'digest'; id: number; hex: string };

interface RemoteStream {
  onDigest(hex: string): void;
  onFailure(error: Error): void;
}

/**
 * One hashing thread, the streams it serves and the ring they share (so memory is per thread, not per stream).
 * Referenced only while a stream is open, so it never holds the process.
 */
class HashThread {
  private readonly worker: Worker;
  private readonly streams = new Map<number, RemoteStream>();
  private readonly ring = new Uint8Array(new SharedArrayBuffer(RING_BYTES));
  private readonly freeSlots = Array.from({ length: SLOTS }, (_, i) => i);
  /** The slot each stream is filling, and how much of it is filled. */
  private readonly filling = new Map<number, { slot: number; filled: number }>();
  /** Streams waiting for ring space, first come first served. */
  private readonly spaceWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;

  constructor() {
    // The worker allocates almost nothing (its bytes are in the shared ring), so a small heap saves several MiB each.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
    this.worker.unref();
    this.worker.postMessage({ op: 'ring', ring: this.ring.buffer });
    this.worker.on('message', (m: WorkerReply) => {
      if (m.op === 'consumed') {
        this.freeSlots.push(m.slot);
        // All of them: each takes what it can and waits again (sending what it holds) if that was not enough.
        for (const w of this.spaceWaiters.splice(0)) w.resolve();
      } else {
        this.streams.get(m.id)?.onDigest(m.hex);
      }
    });
    const fail = (why: string): void => {
      this.failure = new ImagegateError('IO', `the SHA-256 worker thread stopped (${why}); run the command again`);
      for (const s of this.streams.values()) s.onFailure(this.failure);
      this.streams.clear();
      for (const w of this.spaceWaiters.splice(0)) w.reject(this.failure);
    };
    this.worker.on('error', (e) => fail(e.message));
    this.worker.on('exit', (code) => fail(`exit code ${code}`));
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  get load(): number {
    return this.streams.size;
  }

  /** `key` makes it an HMAC; the message carries a copy, which the worker wipes once its HMAC holds the key. */
  open(id: number, algorithm: string, key: Uint8Array | undefined, stream: RemoteStream): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.streams.size === 0) this.worker.ref();
    this.streams.set(id, stream);
    // A fresh buffer of exactly the key, moved rather than copied: a Buffer may be a view into a shared pool, and
    // cloning a view clones the whole pool, other secrets included.
    const keyCopy = key !== undefined ? Uint8Array.from(key) : undefined;
    this.worker.postMessage({ op: 'open', id, algorithm, key: keyCopy }, keyCopy !== undefined ? [keyCopy.buffer] : []);
  }

  /**
   * Copies chunks into this stream's slot of the ring, sending each slot to the worker once full. Returns a promise
   * only when no slot was free and the rest must wait for the worker to hand one back.
   */
  copy(id: number, chunks: Uint8Array[]): Promise<void> | undefined {
    // Closed while it waited for a slot: nothing more to hash.
    if (!this.streams.has(id)) return undefined;
    for (let c = 0; c < chunks.length; c++) {
      let chunk = chunks[c]!;
      while (chunk.length > 0) {
        let slot = this.filling.get(id);
        if (slot === undefined) {
          const free = this.freeSlots.pop();
          if (free === undefined) {
            if (this.failure !== undefined) return Promise.reject(this.failure);
            // Slots come back only once the worker has them: send the partly filled ones too, or streams holding
            // one each could wait for each other for ever.
            for (const held of [...this.filling.keys()]) this.send(held);
            const rest = [chunk, ...chunks.slice(c + 1)];
            return new Promise<void>((resolve, reject) => this.spaceWaiters.push({ resolve, reject })).then(() => this.copy(id, rest));
          }
          slot = { slot: free, filled: 0 };
          this.filling.set(id, slot);
        }
        const piece = Math.min(SLOT_BYTES - slot.filled, chunk.length);
        this.ring.set(chunk.subarray(0, piece), slot.slot * SLOT_BYTES + slot.filled);
        slot.filled += piece;
        chunk = chunk.subarray(piece);
        if (slot.filled === SLOT_BYTES) this.send(id);
      }
    }
    // Another stream waits for a slot: send what this one holds, so that one comes back.
    if (this.spaceWaiters.length > 0) this.send(id);
    return undefined;
  }

  requestDigest(id: number): void {
    this.send(id);
    this.worker.postMessage({ op: 'digest', id });
  }

  /** Sends the stream's slot, as far as it is filled, to the worker. */
  private send(id: number): void {
    const slot = this.filling.get(id);
    if (slot === undefined) return;
    this.filling.delete(id);
    this.worker.postMessage({ op: 'update', id, slot: slot.slot, start: slot.slot * SLOT_BYTES, length: slot.filled });
  }

  close(id: number): void {
    // Its slot goes to the worker like any other (which skips a closed stream's bytes), and so comes back.
    this.send(id);
    if (!this.streams.delete(id)) return;
    if (this.failure === undefined) this.worker.postMessage({ op: 'close', id });
    if (this.streams.size === 0) this.worker.unref();
  }
}

const threads: HashThread[] = [];
let nextStreamId = 1;

/** The least busy usable thread, starting one while fewer than MAX_WORKERS run; undefined on a single core. */
function pickThread(): HashThread | undefined {
  if (availableParallelism() < 2) return undefined;
  const usable = threads.filter((t) => t.usable);
  const idle = usable.find((t) => t.load === 0);
  if (idle !== undefined) return idle;
  if (usable.length < MAX_WORKERS) {
    const started = new HashThread();
    threads.push(started);
    return started;
  }
  return usable.sort((a, b) => a.load - b.load)[0];
}

/**
 * Incremental hash (or, given a key, HMAC) of one stream. `update` copies the chunk (to the ring, or keeps it while the stream is small) and
 * returns a promise only when it had to wait for ring space; the caller must not reuse the chunk before then.
 */
export class StreamHash {
  private inline: Hash | Hmac | undefined;
  private head: Uint8Array[] = [];
  private headBytes = 0;
  private remote: { thread: HashThread; id: number } | undefined;
  /** No thread could take the stream (one core): it is hashed here to the end, and nothing more is kept. */
  private staysInline = false;
  private digestWaiter: { resolve: (hex: string) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly algorithm: 'sha256' | 'sha512',
    private readonly hmacKey?: Uint8Array,
  ) {
    this.inline = hmacKey === undefined ? createHash(algorithm) : createHmac(algorithm, hmacKey);
  }

  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.staysInline) {
      this.inline!.update(chunk);
      return undefined;
    }
    if (this.remote === undefined) {
      this.inline!.update(chunk);
      // A copy: the caller may reuse its buffer once this returns.
      this.head.push(Uint8Array.prototype.slice.call(chunk));
      this.headBytes += chunk.length;
      if (this.headBytes <= INLINE_LIMIT) return undefined;
      if (!this.moveToThread()) {
        // The head was kept only to hand it to a worker; without one it would grow with the layer.
        this.staysInline = true;
        this.close();
        return undefined;
      }
      // The kept head (this chunk included) now goes to the worker; nothing more to copy of this chunk.
      const head = this.head;
      this.head = [];
      return this.remote!.thread.copy(this.remote!.id, head);
    }
    return this.remote.thread.copy(this.remote.id, [chunk]);
  }

  /** The hex digest of everything given to `update`. */
  async digest(): Promise<string> {
    if (this.failure !== undefined) throw this.failure;
    const remote = this.remote;
    if (remote === undefined) return this.inline!.digest('hex');
    const hex = await new Promise<string>((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      remote.thread.requestDigest(remote.id);
    });
    remote.thread.close(remote.id);
    return hex;
  }

  /** Releases the worker's share of this stream (on errors and early ends; `digest` does it on success). */
  close(): void {
    this.head = [];
    this.headBytes = 0;
    if (this.remote !== undefined) this.remote.thread.close(this.remote.id);
  }

  private moveToThread(): boolean {
    const thread = pickThread();
    if (thread === undefined) return false;
    const id = nextStreamId++;
    thread.open(id, this.algorithm, this.hmacKey, {
      onDigest: (hex) => this.digestWaiter?.resolve(hex),
      onFailure: (e) => {
        this.failure = e;
        this.digestWaiter?.reject(e);
      },
    });
    this.remote = { thread, id };
    this.inline = undefined;
    return true;
  }
}

/**
 * Runs `next` once a hash has its copy of a chunk: at once, or when a busy hashing thread made room. Until then the
 * chunk may not be passed on (a later stage may free it) or reused.
 */
export function afterCopy(copied: Promise<void> | undefined, next: () => void, fail: (e: Error) => void): void {
  if (copied === undefined) next();
  else copied.then(next, fail);
}
