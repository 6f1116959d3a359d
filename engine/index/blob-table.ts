import type { Compression } from '../pack/index.js'
import type { BlobType } from '../types.js'
import { SlotFile } from './slot-file.js'

/** Where a blob lives. */
export interface BlobLocation {
  packId: string
  type: BlobType
  compression: Compression
  offset: number
  length: number
  rawLength: number
}

/** A slot: id (32) | pack id (32) | type (1) | compression (1) | offset, length, raw length (u32 LE each) | checksum (4). */
const SLOT_BYTES = 82

/**
 * The index cache's blob table: blob id → pack location, in a slot file
 * (pread/pwrite; see SlotFile for why not LMDB). First location wins: a
 * blob stored twice (by concurrent writers) keeps the location recorded first.
 */
export class BlobTable {
  private readonly file: SlotFile

  private constructor(file: SlotFile) {
    this.file = file
  }

  static open(path: string): BlobTable {
    return new BlobTable(SlotFile.open(path, { slotBytes: SLOT_BYTES, keyBytes: 32, magic: 'CSBLOBT1' }))
  }

  /** True when the table was just created (missing or damaged before): whatever the cache knew of blobs is gone. */
  get created(): boolean {
    return this.file.created
  }

  /** Entries, as this process last saw them (see `readCount`). */
  get count(): number {
    return this.file.count
  }

  /** Entries, re-read from the file (other processes may have added some). */
  readCount(): number {
    return this.file.readCount()
  }

  /** Location of blob `id` (32 bytes), or undefined. */
  get(id: Uint8Array): BlobLocation | undefined {
    const s = this.file.get(id)
    return s ? decodeSlot(s) : undefined
  }

  /** Before `add`s (writers' lock held). */
  beginWrite(): void {
    this.file.beginWrite()
  }

  /** Records a location unless the blob has one; true when added. Between `beginWrite` and `endWrite`. */
  add(id: Uint8Array, loc: BlobLocation): boolean {
    return this.file.put(encodeSlot(id, loc, this.scratch), false) === 'added'
  }

  /** One slot's bytes, reused by every `add` (put writes it before returning). */
  private readonly scratch = Buffer.alloc(SLOT_BYTES)

  endWrite(): void {
    this.file.endWrite()
  }

  /** Every blob: its id (32 bytes) and location. */
  *entries(): Generator<[Buffer, BlobLocation]> {
    for (const s of this.file.scan()) yield [s.subarray(0, 32), decodeSlot(s)]
  }

  /** Counts entries anew (after a crash the header's count may be off). Writers' lock held. */
  recount(): number {
    return this.file.recount()
  }

  /** Forgets every blob (writers' lock held). */
  clear(): void {
    this.file.clear()
  }

  /** Moves to the table another process put in place, if any. */
  refresh(): boolean {
    return this.file.refresh()
  }

  /** Makes what was added durable. */
  sync(): void {
    this.file.sync()
  }

  close(): void {
    this.file.close()
  }
}

function encodeSlot(id: Uint8Array, loc: BlobLocation, b: Buffer): Buffer {
  b.fill(0)
  b.set(id.subarray(0, 32), 0)
  b.write(loc.packId, 32, 32, 'hex')
  b[64] = loc.type === 'data' ? 0 : 1
  b[65] = loc.compression
  b.writeUInt32LE(loc.offset, 66)
  b.writeUInt32LE(loc.length, 70)
  b.writeUInt32LE(loc.rawLength, 74)
  return b
}

function decodeSlot(b: Buffer): BlobLocation {
  return {
    packId: b.toString('hex', 32, 64),
    type: b[64] === 0 ? 'data' : 'tree',
    compression: b[65] as Compression,
    offset: b.readUInt32LE(66),
    length: b.readUInt32LE(70),
    rawLength: b.readUInt32LE(74),
  }
}
