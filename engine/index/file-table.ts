import { closeSync, constants as fsc, fstatSync, openSync, readSync, writeSync } from 'node:fs'
import { SlotFile, fnv1a } from './slot-file.js'

/** What the file-change cache remembers of a file that was stored before. */
export interface FileCacheEntry {
  size: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  /** Whole-file BLAKE3 (hex). */
  blake3: string
  /** Chunk ids (hex), in file order. */
  chunks: string[]
}

/**
 * A slot: device, inode (u64 BE each: the key) | size (u64) | mtime, ctime (i64 ns) | BLAKE3 (32) |
 * chunk count (u32) | the chunk id when there is one, else the offset (u64) of the chunk list in the log | checksum.
 */
const SLOT_BYTES = 112
const AT_SIZE = 16
const AT_MTIME = 24
const AT_CTIME = 32
const AT_B3 = 40
const AT_N = 72
const AT_PAYLOAD = 76
/** A log record: device, inode (16) | count (u32) | ids (32 each) | FNV-1a of the rest (u32). */
const LOG_HEAD = 20

/**
 * The file-change cache: (device, inode) → size, times, BLAKE3 and chunk
 * ids of the file as last stored. A slot file (see SlotFile: pread/pwrite,
 * nothing memory-mapped) holds one slot per file; the chunk lists of files
 * of more than one chunk go to an append-only log beside it, named by the
 * slot. Records check themselves (key and checksum), so whatever a crash
 * leaves half-written reads as "not cached": the file is read again.
 *
 * The log only grows: a changed file of several chunks appends a new list
 * (32 bytes per chunk; ~3 KB for a 100 MB file that changed).
 */
export class FileTable {
  private readonly slots: SlotFile
  private readonly logPath: string
  private logFd: number
  private listBuf = Buffer.alloc(0)
  /** The key of the lookup in progress (no allocation per lookup). */
  private readonly key = Buffer.alloc(16)

  private constructor(slots: SlotFile, logPath: string) {
    this.slots = slots
    this.logPath = logPath
    this.logFd = openSync(logPath, fsc.O_RDWR | fsc.O_CREAT, 0o600)
  }

  /** Opens (creating) the table at `path` and its log at `path`.log. */
  static open(path: string): FileTable {
    // A miss is normal here (a new file): look for a table another process replaced at most once a second.
    return new FileTable(SlotFile.open(path, { slotBytes: SLOT_BYTES, keyBytes: 16, magic: 'CSFILET1', missCheckMs: 1000 }), `${path}.log`)
  }

  get count(): number {
    return this.slots.count
  }

  /** What was stored for the file at (dev, ino), if anything. */
  get(dev: bigint, ino: bigint): FileCacheEntry | undefined {
    writeKey(this.key, dev, ino)
    const s = this.slots.get(this.key)
    if (!s) return undefined
    const n = s.readUInt32LE(AT_N)
    let chunks: string[]
    if (n <= 1) {
      chunks = n === 1 ? [s.toString('hex', AT_PAYLOAD, AT_PAYLOAD + 32)] : []
    } else {
      const list = this.readList(s, Number(s.readBigUInt64LE(AT_PAYLOAD)), n)
      if (!list) return undefined
      chunks = list
    }
    return {
      size: s.readBigUInt64LE(AT_SIZE),
      mtimeNs: s.readBigInt64LE(AT_MTIME),
      ctimeNs: s.readBigInt64LE(AT_CTIME),
      blake3: s.toString('hex', AT_B3, AT_B3 + 32),
      chunks,
    }
  }

  private readList(slot: Buffer, at: number, n: number): string[] | null {
    const len = LOG_HEAD + n * 32 + 4
    if (this.listBuf.length < len) this.listBuf = Buffer.allocUnsafe(Math.max(len, 4096))
    const b = this.listBuf.subarray(0, len)
    if (readSync(this.logFd, b, 0, len, at) !== len) return null
    if (!b.subarray(0, 16).equals(slot.subarray(0, 16)) || b.readUInt32LE(16) !== n || fnv1a(b, 0, len - 4) !== b.readUInt32LE(len - 4)) return null
    const out: string[] = new Array(n)
    for (let i = 0; i < n; i++) out[i] = b.toString('hex', LOG_HEAD + i * 32, LOG_HEAD + 32 + i * 32)
    return out
  }

  /** Remembers stored files (writers' lock held by the caller). */
  putAll(list: readonly { dev: bigint; ino: bigint; entry: FileCacheEntry }[]): void {
    this.slots.beginWrite()
    // Chunk lists first, in one write at the end of the log: a slot never points at bytes not written yet.
    // One buffer for the batch's slots and one for its records (not one small allocation per file).
    const start = fstatSync(this.logFd).size
    let end = start
    let logBytes = 0
    for (const { entry: e } of list) if (e.chunks.length > 1) logBytes += LOG_HEAD + e.chunks.length * 32 + 4
    const all = Buffer.alloc(logBytes)
    const slotBuf = Buffer.alloc(list.length * SLOT_BYTES)
    const slots: Buffer[] = []
    for (const { dev, ino, entry: e } of list) {
      const s = slotBuf.subarray(slots.length * SLOT_BYTES, (slots.length + 1) * SLOT_BYTES)
      writeKey(s, dev, ino)
      s.writeBigUInt64LE(e.size, AT_SIZE)
      s.writeBigInt64LE(e.mtimeNs, AT_MTIME)
      s.writeBigInt64LE(e.ctimeNs, AT_CTIME)
      s.write(e.blake3, AT_B3, 32, 'hex')
      s.writeUInt32LE(e.chunks.length, AT_N)
      if (e.chunks.length === 1) {
        s.write(e.chunks[0], AT_PAYLOAD, 32, 'hex')
      } else if (e.chunks.length > 1) {
        const len = LOG_HEAD + e.chunks.length * 32 + 4
        const r = all.subarray(end - start, end - start + len)
        s.copy(r, 0, 0, 16)
        r.writeUInt32LE(e.chunks.length, 16)
        for (let i = 0; i < e.chunks.length; i++) r.write(e.chunks[i], LOG_HEAD + i * 32, 32, 'hex')
        r.writeUInt32LE(fnv1a(r, 0, len - 4), len - 4)
        s.writeBigUInt64LE(BigInt(end), AT_PAYLOAD)
        end += len
      }
      slots.push(s)
    }
    let done = 0
    while (done < all.length) done += writeSync(this.logFd, all, done, all.length - done, start + done)
    for (const s of slots) this.slots.put(s, true)
    this.slots.endWrite()
  }

  /** Every entry's key and the entry (for moving a cache to a new table; tests). */
  *entries(): Generator<{ dev: bigint; ino: bigint; entry: FileCacheEntry }> {
    for (const s of this.slots.scan()) {
      const dev = s.readBigUInt64BE(0)
      const ino = s.readBigUInt64BE(8)
      const entry = this.get(dev, ino)
      if (entry) yield { dev, ino, entry }
    }
  }

  close(): void {
    this.slots.close()
    closeSync(this.logFd)
    this.logFd = -1
  }
}

function writeKey(k: Buffer, dev: bigint, ino: bigint): void {
  k.writeBigUInt64BE(BigInt.asUintN(64, dev), 0)
  k.writeBigUInt64BE(BigInt.asUintN(64, ino), 8)
}
