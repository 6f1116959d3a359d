import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'

/**
 * A hash table of fixed-size slots in a file, read and written with
 * pread/pwrite (never memory-mapped): the index cache's large tables.
 *
 * Why not LMDB for these: LMDB reads through a memory map, and every page a
 * lookup or insert touches stays mapped, counted in the process's resident
 * memory, until the map is closed. Blob ids are random and a backup inserts
 * thousands at a time, so a 10 GB backup ended with the whole blob table
 * resident (57 MiB; ~600 MiB at 100 GB), and closing and reopening the map
 * to release it leaks memory in lmdb-js (~80 KiB per reopen) and, after
 * write transactions, hit an lmdb-js free-list bug (`mdb_page_alloc error`,
 * MDB_BAD_TXN). Pages read here go to the kernel's page cache only.
 *
 * Layout: a 64-byte header (magic, slot size, capacity, count, checksum),
 * then `capacity` slots. A slot is `keyBytes` of key, the payload, and a
 * 32-bit checksum of both (FNV-1a; never 0). An all-zero slot is empty. A
 * slot whose checksum does not match (a write torn by a crash) counts as
 * occupied for probing and is never returned; an insert may reuse it.
 * Linear probing from a hash of the key; entries are never deleted (a table
 * is cleared by replacing its file). The table doubles (a new file, renamed
 * over the old) past 70 % full.
 *
 * Writers must be serialized across processes by the caller (the index
 * cache runs them inside an LMDB write transaction, LMDB's writer lock).
 * Readers in other processes keep reading the file they opened; `refresh`
 * moves to a replacement.
 */
export class SlotFile {
  readonly path: string
  readonly slotBytes: number
  readonly keyBytes: number
  private readonly magic: string
  private readonly missCheckMs: number
  private fd = -1
  private ino = 0
  private cap = 0
  private n = 0
  /** Set when the file was created empty at open (missing or unreadable before). */
  created = false
  private readonly buf: Buffer
  /** For reading and writing the header (no allocation per write batch). */
  private readonly head = Buffer.alloc(HEADER_BYTES)
  private lastReplaceCheck = 0

  private constructor(path: string, o: SlotFileOptions) {
    this.path = path
    this.slotBytes = o.slotBytes
    this.keyBytes = o.keyBytes
    this.magic = o.magic
    this.missCheckMs = o.missCheckMs ?? 0
    this.buf = Buffer.alloc(o.slotBytes * PROBE_READ)
  }

  /** Opens (creating when missing or damaged) the table at `path`. */
  static open(path: string, o: SlotFileOptions): SlotFile {
    if (o.magic.length !== 8) throw new TypeError('slot file magic must be 8 characters')
    const f = new SlotFile(path, o)
    if (!f.openExisting()) {
      f.create(path, o.initialSlots ?? MIN_SLOTS)
      f.created = true
      if (!f.openExisting()) throw new Error(`${path}: cannot open the table just created`)
    }
    return f
  }

  /** Entries (as last written by this process, or read from the header under `refreshCount`). */
  get count(): number {
    return this.n
  }

  get capacity(): number {
    return this.cap
  }

  private openExisting(): boolean {
    let fd: number
    try {
      fd = openSync(this.path, 'r+')
    } catch {
      return false
    }
    const h = Buffer.alloc(HEADER_BYTES)
    const st = fstatSync(fd)
    if (readSync(fd, h, 0, HEADER_BYTES, 0) !== HEADER_BYTES || !this.headerOk(h, st.size)) {
      closeSync(fd)
      return false
    }
    if (this.fd >= 0) closeSync(this.fd)
    this.fd = fd
    this.ino = st.ino
    this.cap = h.readUInt32LE(16)
    this.n = h.readUInt32LE(20)
    return true
  }

  private headerOk(h: Buffer, size: number): boolean {
    if (h.toString('latin1', 0, 8) !== this.magic || h.readUInt32LE(8) !== VERSION || h.readUInt32LE(12) !== this.slotBytes) return false
    if (fnv1a(h, 0, 60) !== h.readUInt32LE(60)) return false
    const cap = h.readUInt32LE(16)
    return cap >= MIN_SLOTS && size === HEADER_BYTES + cap * this.slotBytes
  }

  private header(cap: number, count: number): Buffer {
    const h = this.head.fill(0)
    h.write(this.magic, 0, 'latin1')
    h.writeUInt32LE(VERSION, 8)
    h.writeUInt32LE(this.slotBytes, 12)
    h.writeUInt32LE(cap, 16)
    h.writeUInt32LE(count, 20)
    h.writeUInt32LE(fnv1a(h, 0, 60), 60)
    return h
  }

  /** Writes an empty table of `cap` slots to `path` (atomically: a temporary file renamed over it). */
  private create(path: string, cap: number): void {
    const tmp = `${path}.${process.pid}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      ftruncateSync(fd, HEADER_BYTES + cap * this.slotBytes)
      writeSync(fd, this.header(cap, 0), 0, HEADER_BYTES, 0)
      fdatasyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  }

  /** Moves to the file now at `path` when another process replaced it (grew or cleared the table). True when it did. */
  refresh(): boolean {
    let ino: number
    try {
      ino = statSync(this.path).ino
    } catch {
      return false
    }
    if (ino === this.ino) return false
    if (!this.openExisting()) return false
    return true
  }

  /** Re-reads the count from the header (other processes may have added entries), after a `refresh`. */
  readCount(): number {
    this.refresh()
    const h = this.head
    if (readSync(this.fd, h, 0, HEADER_BYTES, 0) === HEADER_BYTES && this.headerOk(h, fstatSync(this.fd).size)) this.n = h.readUInt32LE(20)
    return this.n
  }

  /**
   * `refresh` after a lookup missed, at most every `missCheckMs`: a table
   * whose misses are normal (the file cache, in a first backup) checks
   * rarely; one where a miss is an error (blob locations) checks every time.
   */
  private refreshOnMiss(): boolean {
    const now = Date.now()
    if (now - this.lastReplaceCheck < this.missCheckMs) return false
    this.lastReplaceCheck = now
    return this.refresh()
  }

  /**
   * Before a batch of writes (caller holds the writers' lock): moves to a
   * replacement file, and re-reads the count another process may have changed.
   */
  beginWrite(): void {
    this.readCount()
  }

  /** After a batch of writes: records the count in the header. */
  endWrite(): void {
    writeSync(this.fd, this.header(this.cap, this.n), 0, HEADER_BYTES, 0)
  }

  private home(key: Uint8Array): number {
    return hashKey(key, this.keyBytes) % this.cap
  }

  private slotOffset(i: number): number {
    return HEADER_BYTES + i * this.slotBytes
  }

  /**
   * The slot holding `key` (a copy: key, payload and checksum), or null.
   * Reads a few slots per call while probing.
   */
  get(key: Uint8Array): Buffer | null {
    const r = this.find(key)
    if (r.slot) return r.slot
    if (this.refreshOnMiss()) return this.find(key).slot
    return null
  }

  private find(key: Uint8Array): { slot: Buffer | null; free: number } {
    const S = this.slotBytes
    let i = this.home(key)
    let free = -1
    for (let probed = 0; probed < this.cap; ) {
      const k = Math.min(PROBE_READ, this.cap - i)
      const got = readSync(this.fd, this.buf, 0, k * S, this.slotOffset(i))
      if (got !== k * S) throw new Error(`${this.path}: short read`)
      for (let j = 0; j < k; j++, probed++) {
        const o = j * S
        if (isZero(this.buf, o, S)) return { slot: null, free: free >= 0 ? free : i + j }
        if (fnv1a(this.buf, o, S - 4) !== this.buf.readUInt32LE(o + S - 4)) {
          if (free < 0) free = i + j // torn: reusable
          continue
        }
        if (equalKey(this.buf, o, key, this.keyBytes)) return { slot: Buffer.from(this.buf.subarray(o, o + S)), free: i + j }
      }
      i += k
      if (i === this.cap) i = 0
    }
    return { slot: null, free }
  }

  /**
   * Writes `slot` (key at the start; the last 4 bytes are set here). When an
   * entry with the key exists, replaces it if `replace`, else keeps it.
   * Returns what happened. Call between `beginWrite` and `endWrite`.
   */
  put(slot: Buffer, replace: boolean): 'added' | 'replaced' | 'kept' {
    // (`slot` is written before this returns: callers may reuse it.)
    if (slot.length !== this.slotBytes) throw new TypeError('slot has the wrong size')
    slot.writeUInt32LE(fnv1a(slot, 0, this.slotBytes - 4), this.slotBytes - 4)
    const r = this.find(slot)
    if (r.slot) {
      if (!replace) return 'kept'
      writeSync(this.fd, slot, 0, this.slotBytes, this.slotOffset(r.free))
      return 'replaced'
    }
    if ((this.n + 1) * 10 > this.cap * 7) {
      this.grow()
      return this.put(slot, replace)
    }
    if (r.free < 0) throw new Error(`${this.path}: table full`)
    writeSync(this.fd, slot, 0, this.slotBytes, this.slotOffset(r.free))
    this.n++
    return 'added'
  }

  /** Every valid slot (copies), in file order. Other processes may write meanwhile: a scan is a best-effort view. */
  *scan(): Generator<Buffer> {
    const S = this.slotBytes
    const per = Math.max(1, Math.floor(SCAN_BYTES / S))
    const b = Buffer.alloc(per * S)
    for (let i = 0; i < this.cap; i += per) {
      const k = Math.min(per, this.cap - i)
      const got = readSync(this.fd, b, 0, k * S, this.slotOffset(i))
      for (let j = 0; j < Math.floor(got / S); j++) {
        const o = j * S
        if (isZero(b, o, S) || fnv1a(b, o, S - 4) !== b.readUInt32LE(o + S - 4)) continue
        yield Buffer.from(b.subarray(o, o + S))
      }
    }
  }

  /** Counts valid slots (a full scan) and records the count in the header: after a crash it may be off. Writers' lock held. */
  recount(): number {
    let n = 0
    for (const _ of this.scan()) n++
    this.n = n
    this.endWrite()
    return n
  }

  /** Doubles the table: a new file with every valid slot re-inserted, renamed over this one. Writers' lock held. */
  private grow(): void {
    const cap = this.cap * 2
    const tmp = `${this.path}.${process.pid}.tmp`
    const next = new SlotFile(this.path, { slotBytes: this.slotBytes, keyBytes: this.keyBytes, magic: this.magic, missCheckMs: this.missCheckMs })
    next.create(tmp, cap)
    const fd = openSync(tmp, 'r+')
    next.fd = fd
    next.cap = cap
    try {
      for (const s of this.scan()) {
        const r = next.find(s)
        if (r.slot || r.free < 0) continue
        writeSync(fd, s, 0, this.slotBytes, next.slotOffset(r.free))
        next.n++
      }
      writeSync(fd, next.header(cap, next.n), 0, HEADER_BYTES, 0)
      fdatasyncSync(fd)
    } catch (err) {
      closeSync(fd)
      rmSync(tmp, { force: true })
      throw err
    }
    renameSync(tmp, this.path)
    closeSync(this.fd)
    this.fd = fd
    this.ino = fstatSync(fd).ino
    this.cap = cap
    this.n = next.n
  }

  /** Replaces the table with an empty one (other processes move to it on `refresh`). Writers' lock held. */
  clear(): void {
    this.create(this.path, MIN_SLOTS)
    if (!this.openExisting()) throw new Error(`${this.path}: cannot open the table just created`)
  }

  /** Makes written slots durable. */
  sync(): void {
    fdatasyncSync(this.fd)
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd)
    this.fd = -1
  }
}

/** How a slot file is laid out. */
export interface SlotFileOptions {
  /** Bytes per slot, the 4-byte checksum included. */
  slotBytes: number
  /** The first `keyBytes` of a slot are its key. */
  keyBytes: number
  /** 8 characters naming the kind of table (a file of another kind is not opened as this one). */
  magic: string
  /** Capacity of a new table (default 1024). */
  initialSlots?: number
  /** Least time between two checks for a replaced file after lookups that missed (default 0: every miss). */
  missCheckMs?: number
}

const VERSION = 1
const HEADER_BYTES = 64
const MIN_SLOTS = 1024
/** Slots read per probe step (most lookups end within the first). */
const PROBE_READ = 4
const SCAN_BYTES = 1 << 20

/** FNV-1a (32-bit) of `b[o, o+n)`, never 0 (0 marks an empty slot). */
export function fnv1a(b: Uint8Array, o: number, n: number): number {
  let h = 0x811c9dc5
  for (let i = o; i < o + n; i++) {
    h ^= b[i]
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0 || 1
}

/** A 32-bit hash of the key's bytes (FNV-1a, then a final mix: keys may be far from uniform, like inode numbers). */
function hashKey(key: Uint8Array, n: number): number {
  let h = fnv1a(key, 0, n)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function isZero(b: Buffer, o: number, n: number): boolean {
  for (let i = o; i < o + n; i++) if (b[i] !== 0) return false
  return true
}

function equalKey(b: Buffer, o: number, key: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[o + i] !== key[i]) return false
  return true
}
