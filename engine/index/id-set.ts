/**
 * The set of stored blob ids, in memory, for the question every chunk of a
 * backup asks: "is this stored already?".
 *
 * Why not the LMDB blob table: ids are random, so each lookup lands on its
 * own page of the memory-mapped file, and the kernel maps neighbouring pages
 * with it; a 10 GB backup ended with the whole 70 MB index file resident
 * (counted in the process's memory), a 100 GB one would have held ~700 MB.
 * This set costs 23-34 bytes per blob (a 10 GB project: ~4 MB; 100 GB: ~40 MB)
 * and lives in a SharedArrayBuffer that the blob workers read directly.
 *
 * It keeps the first 16 bytes (128 bits) of each 32-byte id. Two different
 * chunks sharing them would make the second look stored: with ids from a
 * keyed hash, the chance is ~n²/2¹²⁹ (10⁹ chunks: ~10⁻²¹), far below the
 * rate of undetected hardware errors; restic and borg make the same kind of
 * bet on their full ids.
 *
 * Layout: an open-addressing table with linear probing; slot i is the four
 * 32-bit words [4i, 4i+4) of `words`; slot 0 is a header (word 0: the count).
 * An all-zero slot is empty, so an id whose first 16 bytes are zero is never
 * reported stored (it is stored again: harmless). Only the owning thread
 * adds; readers in other threads may see a slot half-written, which cannot
 * match (word 0, written last with Atomics.store, is read first): they then
 * report "not stored", which only costs the work of storing it again.
 */
export class IdSet {
  private words: Uint32Array
  private cap: number
  private count = 0

  private constructor(words: Uint32Array) {
    this.words = words
    this.cap = words.length / 4 - 1
    this.count = Atomics.load(words, 0)
  }

  /** An empty set sized for `expected` ids without growing. */
  static create(expected = 0): IdSet {
    return new IdSet(allocate(capacityFor(expected)))
  }

  /** A read-only view of a set built in another thread (from `buffer`). */
  static view(buffer: SharedArrayBuffer): IdSet {
    return new IdSet(new Uint32Array(buffer))
  }

  /** The shared memory holding the set; replaced when the set grows. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer
  }

  get size(): number {
    return this.count
  }

  /** Bytes of memory the table takes. */
  get byteLength(): number {
    return this.words.byteLength
  }

  /** True when `id` (32 bytes, or at least the first 16) is in the set. */
  has(id: Uint8Array, offset = 0): boolean {
    const w0 = readWord(id, offset)
    const w1 = readWord(id, offset + 4)
    const w2 = readWord(id, offset + 8)
    const w3 = readWord(id, offset + 12)
    if ((w0 | w1 | w2 | w3) === 0) return false
    const words = this.words
    const cap = this.cap
    let i = w1 % cap
    for (;;) {
      const o = (i + 1) * 4
      const a = Atomics.load(words, o)
      if (a === 0 && words[o + 1] === 0 && words[o + 2] === 0 && words[o + 3] === 0) return false
      if (a === w0 && words[o + 1] === w1 && words[o + 2] === w2 && words[o + 3] === w3) return true
      if (++i === cap) i = 0
    }
  }

  hasHex(id: string): boolean {
    return this.has(Buffer.from(id.slice(0, 32), 'hex'))
  }

  /** Adds `id`; false when it was there already (or is all zeros). Owning thread only. */
  add(id: Uint8Array, offset = 0): boolean {
    const w0 = readWord(id, offset)
    const w1 = readWord(id, offset + 4)
    const w2 = readWord(id, offset + 8)
    const w3 = readWord(id, offset + 12)
    if ((w0 | w1 | w2 | w3) === 0) return false
    if ((this.count + 1) * 10 > this.cap * 7) this.grow()
    return this.insert(w0, w1, w2, w3)
  }

  addHex(id: string): boolean {
    return this.add(Buffer.from(id.slice(0, 32), 'hex'))
  }

  /**
   * Removes `id`; false when it was not there. Owning thread only, and only while no other thread reads
   * the set (entries move during a removal, so a concurrent reader could miss one; it cannot see one that
   * is not there). Backward-shift deletion: later entries of the probe run move up into the hole.
   */
  delete(id: Uint8Array, offset = 0): boolean {
    const w0 = readWord(id, offset)
    const w1 = readWord(id, offset + 4)
    const w2 = readWord(id, offset + 8)
    const w3 = readWord(id, offset + 12)
    if ((w0 | w1 | w2 | w3) === 0) return false
    const words = this.words
    const cap = this.cap
    let i = w1 % cap
    for (;;) {
      const o = (i + 1) * 4
      const a = words[o]
      if (a === 0 && words[o + 1] === 0 && words[o + 2] === 0 && words[o + 3] === 0) return false
      if (a === w0 && words[o + 1] === w1 && words[o + 2] === w2 && words[o + 3] === w3) break
      if (++i === cap) i = 0
    }
    // i is the hole. Move up every later entry of the run whose home slot is not cyclically in (i, j].
    let j = i
    for (;;) {
      if (++j === cap) j = 0
      const oj = (j + 1) * 4
      if ((words[oj] | words[oj + 1] | words[oj + 2] | words[oj + 3]) === 0) break
      const home = words[oj + 1] % cap
      const stays = i <= j ? home > i && home <= j : home > i || home <= j
      if (stays) continue
      const oi = (i + 1) * 4
      words[oi + 1] = words[oj + 1]
      words[oi + 2] = words[oj + 2]
      words[oi + 3] = words[oj + 3]
      Atomics.store(words, oi, words[oj])
      i = j
    }
    const oi = (i + 1) * 4
    Atomics.store(words, oi, 0)
    words[oi + 1] = 0
    words[oi + 2] = 0
    words[oi + 3] = 0
    Atomics.store(words, 0, --this.count)
    return true
  }

  deleteHex(id: string): boolean {
    return this.delete(Buffer.from(id.slice(0, 32), 'hex'))
  }

  private insert(w0: number, w1: number, w2: number, w3: number): boolean {
    const words = this.words
    const cap = this.cap
    let i = w1 % cap
    for (;;) {
      const o = (i + 1) * 4
      const a = words[o]
      if (a === 0 && words[o + 1] === 0 && words[o + 2] === 0 && words[o + 3] === 0) {
        words[o + 1] = w1
        words[o + 2] = w2
        words[o + 3] = w3
        Atomics.store(words, o, w0)
        Atomics.store(words, 0, ++this.count)
        return true
      }
      if (a === w0 && words[o + 1] === w1 && words[o + 2] === w2 && words[o + 3] === w3) return false
      if (++i === cap) i = 0
    }
  }

  /** Grows the table by half (a new buffer: readers elsewhere keep the old one until given the new). */
  private grow(): void {
    const old = this.words
    this.words = allocate(Math.ceil(this.cap * 1.5))
    this.cap = this.words.length / 4 - 1
    this.count = 0
    for (let o = 4; o < old.length; o += 4) {
      if ((old[o] | old[o + 1] | old[o + 2] | old[o + 3]) !== 0) this.insert(old[o], old[o + 1], old[o + 2], old[o + 3])
    }
  }

  /** The ids' 16-byte prefixes, one after the other (for saving the set to a file). */
  serialize(): Buffer {
    const out = Buffer.allocUnsafe(this.count * 16)
    const words = this.words
    let at = 0
    for (let o = 4; o < words.length; o += 4) {
      if ((words[o] | words[o + 1] | words[o + 2] | words[o + 3]) === 0) continue
      for (let k = 0; k < 4; k++) out.writeUInt32LE(words[o + k], at + k * 4)
      at += 16
    }
    return out
  }

  /** A set holding the prefixes in `data` (as written by `serialize`). */
  static deserialize(data: Uint8Array): IdSet {
    if (data.length % 16 !== 0) throw new Error('id set: length is not a multiple of 16')
    const s = IdSet.create(data.length / 16)
    for (let at = 0; at < data.length; at += 16) s.add(data, at)
    return s
  }
}

function readWord(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0
}

/** Slots for `n` ids at a load of at most 70 %, at least 1024. */
function capacityFor(n: number): number {
  return Math.max(1024, Math.ceil((n * 10) / 7) + 1)
}

function allocate(cap: number): Uint32Array {
  return new Uint32Array(new SharedArrayBuffer((cap + 1) * 16))
}
