/**
 * Frees a chunk's memory when its last reader is done with it, instead of whenever the garbage collector gets there.
 *
 * A layer streams through as 1 MiB chunks, each a fresh buffer (a file read, AES-CTR's output), and V8 collects
 * buffers only after some 64 MiB of them piled up, so without this a process copying one layer holds 100 MiB and
 * more of dead chunks, and pays a page fault for every fresh page. `ArrayBuffer.prototype.transfer(0)` detaches a
 * buffer and frees its memory at once, which the allocator then hands to the next chunk.
 *
 * That is only safe for the holder of the last reference, so it is opt-in at both ends: a producer marks the chunks it
 * allocated and never touches again (`markReleasable`), a stage that keeps a reference after passing a chunk on
 * takes it out of the scheme (`claimChunk`), and only a stage that consumes a chunk for good, turning it into other
 * bytes or writing it to a file, calls `releaseChunk`. A mistake shows as a zero-length (detached) buffer, which
 * fails a digest or HMAC check loudly; it cannot silently change data.
 */
const releasable = new WeakSet<ArrayBuffer>();

/** ES2024's ArrayBuffer.prototype.transfer, which the ES2023 library types lack. */
export type TransferableBuffer = ArrayBuffer & { transfer(newLength?: number): ArrayBuffer };

/** Marks a chunk its producer will never read or write again; only a whole, unshared ArrayBuffer qualifies. */
export function markReleasable<T extends Uint8Array>(chunk: T): T {
  const buffer = chunk.buffer;
  if (buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength) releasable.add(buffer);
  return chunk;
}

/** For a stage that keeps `chunk` after passing it on: nobody may free it any more. */
export function claimChunk(chunk: Uint8Array): void {
  if (chunk.buffer instanceof ArrayBuffer) releasable.delete(chunk.buffer);
}

/** For the last reader of `chunk`: frees it now if its producer marked it and nobody claimed it. */
export function releaseChunk(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (buffer instanceof ArrayBuffer && releasable.delete(buffer)) (buffer as TransferableBuffer).transfer(0);
}
