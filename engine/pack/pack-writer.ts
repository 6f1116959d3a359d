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
}

/** Data packs hold file contents; meta packs hold trees. They never mix. */
export type PackKind = 'data' | 'meta'

/** Where a pack of this kind is stored on the remote. */
export function packObjectName(kind: PackKind, id: string): string {
  return `${kind}/${id.slice(0, 2)}/${id}`
}

/**
 * Accumulates sealed blobs of one kind in memory until `full`, then
 * `finish()` produces the pack bytes (blobs, sealed header, header length).
 */
export class PackWriter {
  readonly kind: PackKind
  private parts: Buffer[] = []
  private entries: PackEntry[] = []
  private bytes = 0
  private readonly targetBytes: number
  constructor(kind: PackKind, targetBytes: number) {
    this.kind = kind
    this.targetBytes = targetBytes
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
  add(id: string, type: BlobType, blob: EncodedBlob): PackEntry {
    const e: PackEntry = { id, type, compression: blob.compression, offset: this.bytes, length: blob.sealed.length, rawLength: blob.rawLength }
    this.parts.push(blob.sealed)
    this.entries.push(e)
    this.bytes += blob.sealed.length
    return e
  }
  /** Seals the header and returns the whole pack; the writer is empty afterwards. */
  finish(sealer: Sealer): FinishedPack {
    const trailer = encodeTrailer(this.entries, sealer)
    const bytes = Buffer.concat([...this.parts, trailer])
    const out: FinishedPack = { id: hashHex(bytes) as PackId, kind: this.kind, bytes, entries: this.entries }
    this.parts = []
    this.entries = []
    this.bytes = 0
    return out
  }
  /** Size the pack would have if finished now (exact). */
  projectedSize(sealer: Sealer): number {
    return this.bytes + trailerSize(this.entries.length, sealer)
  }
}
