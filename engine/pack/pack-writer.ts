import type { Sealer } from '../crypto/index.js'
import { hashHex } from '../hash/index.js'
import type { BlobType, PackId } from '../types.js'
import { encodeTrailer, trailerSize, type EncodedBlob, type PackEntry } from './format.js'

/** A finished pack ready to upload. */
export interface FinishedPack {
  id: PackId
  kind: PackKind
  bytes: Buffer
  entries: PackEntry[]
  /** The buffer `bytes` lives in, for reuse once the pack is uploaded (when the writer was given an allocator). */
  backing: Buffer | null
}

/** Gives a writer a buffer of at least `size` bytes (a pool can hand out recycled ones). */
export type BufferSource = (size: number) => Buffer

/** Data packs hold file contents; meta packs hold trees. They never mix. */
export type PackKind = 'data' | 'meta'

/** Where a pack of this kind is stored on the remote. */
export function packObjectName(kind: PackKind, id: string): string {
  return `${kind}/${id.slice(0, 2)}/${id}`
}

/**
 * Accumulates sealed blobs of one kind until `full`, then `finish()`
 * produces the pack bytes (blobs, sealed header, header length).
 *
 * Blobs are copied into one buffer per pack (sized to the target plus room
 * for the trailer, grown only for a blob bigger than the target), so a pack
 * costs one allocation, not one per blob plus a concatenation.
 */
export class PackWriter {
  readonly kind: PackKind
  private buf: Buffer | null = null
  private entries: PackEntry[] = []
  private bytes = 0
  private readonly targetBytes: number
  private readonly headroomBytes: number
  private readonly alloc: BufferSource
  constructor(kind: PackKind, targetBytes: number, o: { headroomBytes?: number; alloc?: BufferSource } = {}) {
    this.kind = kind
    this.targetBytes = targetBytes
    this.headroomBytes = o.headroomBytes ?? 64 * 1024
    this.alloc = o.alloc ?? ((n) => Buffer.allocUnsafeSlow(n))
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
  /** Copies a sealed blob into the pack. */
  add(id: string, type: BlobType, blob: EncodedBlob): PackEntry {
    const n = blob.sealed.length
    const need = this.bytes + n
    if (!this.buf || need > this.buf.length) {
      const size = Math.max(need + this.headroomBytes, this.buf ? this.buf.length * 2 : this.targetBytes + this.headroomBytes)
      const next = this.alloc(size)
      if (this.buf) this.buf.copy(next, 0, 0, this.bytes)
      this.buf = next
    }
    blob.sealed.copy(this.buf, this.bytes)
    const e: PackEntry = { id, type, compression: blob.compression, offset: this.bytes, length: n, rawLength: blob.rawLength }
    this.entries.push(e)
    this.bytes += n
    return e
  }
  /** Seals the header and returns the whole pack; the writer is empty afterwards. */
  finish(sealer: Sealer): FinishedPack {
    const trailer = encodeTrailer(this.entries, sealer)
    let bytes: Buffer
    const data = this.buf ? this.buf.subarray(0, this.bytes) : Buffer.alloc(0)
    if (this.buf && this.buf.length >= this.bytes + trailer.length) {
      trailer.copy(this.buf, this.bytes)
      bytes = this.buf.subarray(0, this.bytes + trailer.length)
    } else {
      bytes = Buffer.concat([data, trailer])
    }
    const out: FinishedPack = { id: hashHex(bytes) as PackId, kind: this.kind, bytes, entries: this.entries, backing: this.buf }
    this.buf = null
    this.entries = []
    this.bytes = 0
    return out
  }
  /** Size the pack would have if finished now (exact). */
  projectedSize(sealer: Sealer): number {
    return this.bytes + trailerSize(this.entries.length, sealer)
  }
}
