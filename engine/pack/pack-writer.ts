import type { Sealer } from '../crypto/index.js'
import { StreamHasher } from '../hash/index.js'
import type { BlobType, PackId } from '../types.js'
import { encodeTrailer, trailerSize, type EncodedBlob, type PackEntry } from './format.js'

/** A sealed pack: every byte handed to the sink, which is not yet committed under its name. */
export interface SealedPack {
  id: PackId
  kind: PackKind
  /** Total size in bytes (blobs and trailer). */
  size: number
  entries: PackEntry[]
}

/**
 * Where a pack's bytes go, in order (a remote's ObjectWriter, or a
 * `BufferSink`). `data` must stay unchanged until the promise resolves.
 */
export interface PackSink {
  write(data: Uint8Array): Promise<void>
}

/** Data packs hold file contents; meta packs hold trees. They never mix. */
export type PackKind = 'data' | 'meta'

/** Where a pack of this kind is stored on the remote. */
export function packObjectName(kind: PackKind, id: string): string {
  return `${kind}/${id.slice(0, 2)}/${id}`
}

/** Blobs below this size are gathered and written together (one write call for many small files). */
const SMALL_BLOB = 64 * 1024
const GATHER_BYTES = 512 * 1024
/** Gather buffers whose writes completed, for the next pack writer's small blobs (shared by every writer of a thread). */
const spareGathers: Buffer[] = []
const MAX_SPARE_GATHERS = 4

/**
 * Writes one pack: sealed blobs of one kind, streamed to a sink as they come
 * (a pack is never held in memory whole), then the sealed header at `finish`.
 * The pack id (BLAKE3 of all bytes) is hashed along the way. Small blobs are
 * copied into a gather buffer and written in batches; larger ones are written
 * from the caller's buffer, so `add`'s promise must be awaited before that
 * buffer is reused.
 */
export class PackWriter {
  readonly kind: PackKind
  private readonly sink: PackSink
  private readonly targetBytes: number
  private readonly hasher = new StreamHasher()
  private entries: PackEntry[] = []
  private bytes = 0
  private gather: Buffer | null = null
  private gathered = 0
  private readonly writes: Promise<void>[] = []

  constructor(kind: PackKind, targetBytes: number, sink: PackSink) {
    this.kind = kind
    this.targetBytes = targetBytes
    this.sink = sink
  }
  get count(): number {
    return this.entries.length
  }
  get sizeBytes(): number {
    return this.bytes
  }
  get full(): boolean {
    return this.bytes >= this.targetBytes
  }
  /** True when adding `n` more bytes would take a non-empty pack past its target. */
  wouldOverflow(n: number): boolean {
    return this.entries.length > 0 && this.bytes + n > this.targetBytes
  }

  /**
   * Appends a sealed blob. Resolves once its bytes are written, or at once
   * for a small blob (copied; a failed write of it fails `finish`).
   */
  add(id: string, type: BlobType, blob: EncodedBlob): Promise<void> {
    const n = blob.sealed.length
    this.entries.push({ id, type, compression: blob.compression, offset: this.bytes, length: n, rawLength: blob.rawLength })
    this.bytes += n
    this.hasher.update(blob.sealed)
    if (n < SMALL_BLOB) {
      if (this.gather && this.gathered + n > this.gather.length) this.flushGather()
      if (!this.gather) {
        this.gather = spareGathers.pop() ?? Buffer.allocUnsafeSlow(GATHER_BYTES)
        this.gathered = 0
      }
      this.gather.set(blob.sealed, this.gathered)
      this.gathered += n
      return Promise.resolve()
    }
    this.flushGather()
    const p = this.sink.write(blob.sealed)
    p.catch(() => undefined) // reported to the caller, and by finish
    this.writes.push(p)
    return p
  }

  /** Writes the gathered small blobs (in order: before any later write is issued). */
  private flushGather(): void {
    if (!this.gather) return
    const buf = this.gather
    const p = this.sink.write(buf.subarray(0, this.gathered))
    // Reused once written (a pack of small files fills 32 of them: garbage the collector would free late).
    p.then(() => { if (spareGathers.length < MAX_SPARE_GATHERS) spareGathers.push(buf) }, () => undefined) // a failure is reported by finish
    this.writes.push(p)
    this.gather = null
  }

  /**
   * Writes the sealed header and waits for every write; returns the pack's id
   * and entries. The caller commits the sink under `packObjectName(kind, id)`.
   */
  async finish(sealer: Sealer): Promise<SealedPack> {
    this.flushGather()
    const trailer = encodeTrailer(this.entries, sealer)
    this.hasher.update(trailer)
    this.writes.push(this.sink.write(trailer))
    const size = this.bytes + trailer.length
    const entries = this.entries
    this.entries = []
    const writes = this.writes.splice(0)
    await Promise.all(writes)
    return { id: this.hasher.digestHex() as PackId, kind: this.kind, size, entries }
  }

  /** Size the pack would have if finished now (exact). */
  projectedSize(sealer: Sealer): number {
    return this.bytes + trailerSize(this.entries.length, sealer)
  }
}

/** A sink that keeps the pack in memory (tests, fixtures, repair); `bytes()` returns it. */
export class BufferSink implements PackSink {
  private readonly chunks: Buffer[] = []
  async write(data: Uint8Array): Promise<void> {
    this.chunks.push(Buffer.from(data))
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }
}

/** A sink that drops the bytes (dry runs count sizes only). */
export const NULL_SINK: PackSink = { write: async () => {} }
