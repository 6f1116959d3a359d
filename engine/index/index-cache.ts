import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import type { BlobType } from '../types.js'
import { PACK_ENTRY_BYTES, readEntry, writeEntry, type Compression, type PackEntry, type PackKind } from '../pack/index.js'
import type { IndexedPack } from './index-object.js'

/** Where a blob lives. */
export interface BlobLocation {
  packId: string
  type: BlobType
  compression: Compression
  offset: number
  length: number
  rawLength: number
}

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

const LOC_BYTES = 46

function encodeLoc(packId: string, e: PackEntry): Buffer {
  const b = Buffer.allocUnsafe(LOC_BYTES)
  b.write(packId, 0, 32, 'hex')
  b[32] = e.type === 'data' ? 0 : 1
  b[33] = e.compression
  b.writeUInt32LE(e.offset, 34)
  b.writeUInt32LE(e.length, 38)
  b.writeUInt32LE(e.rawLength, 42)
  return b
}

function decodeLoc(b: Buffer): BlobLocation {
  return {
    packId: b.toString('hex', 0, 32),
    type: b[32] === 0 ? 'data' : 'tree',
    compression: b[33] as Compression,
    offset: b.readUInt32LE(34),
    length: b.readUInt32LE(38),
    rawLength: b.readUInt32LE(42),
  }
}

function encodePack(p: IndexedPack): Buffer {
  const head = Buffer.allocUnsafe(5)
  head[0] = p.kind === 'data' ? 0 : 1
  head.writeUInt32LE(p.size, 1)
  return head
}

/**
 * The local LMDB cache of one repository: blob → pack location, known packs,
 * packs uploaded but not yet named by an index object ("pending"), index
 * objects already loaded, and the file-change cache.
 *
 * It is a cache: everything in it can be rebuilt from the remote (index
 * objects, pack headers). Several processes may open it at once (LMDB's
 * own locking).
 */
export class IndexCache {
  private readonly root: RootDatabase
  private readonly blobs: Database<Buffer, Buffer>
  private readonly packs: Database<Buffer, Buffer>
  private readonly pending: Database<Buffer, Buffer>
  private readonly indexes: Database<string, string>
  private readonly files: Database<Buffer, Buffer>

  private constructor(root: RootDatabase) {
    this.root = root
    this.blobs = root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.packs = root.openDB({ name: 'packs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.pending = root.openDB({ name: 'pending', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.indexes = root.openDB({ name: 'indexes', encoding: 'string' }) as unknown as Database<string, string>
    this.files = root.openDB({ name: FILES_DB, encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
  }

  /** Opens (creating) the cache of repository `repoId` under `cacheDir`. */
  static open(cacheDir: string, repoId: string): IndexCache {
    const dir = join(cacheDir, repoId)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const root = open({ path: join(dir, 'index.lmdb'), maxDbs: 16, mapSize: MAP_SIZE })
    dropOldFileTable(root)
    return new IndexCache(root)
  }

  /** Location of blob `id`, or undefined. */
  getBlob(id: string): BlobLocation | undefined {
    const b = this.blobs.getBinaryFast(Buffer.from(id, 'hex'))
    return b ? decodeLoc(b) : undefined
  }

  hasBlob(id: string): boolean {
    return this.blobs.doesExist(Buffer.from(id, 'hex'))
  }

  hasPack(packId: string): boolean {
    return this.packs.doesExist(Buffer.from(packId, 'hex'))
  }

  /** Kind and size of a known pack. */
  getPack(packId: string): { kind: PackKind; size: number } | undefined {
    const b = this.packs.getBinaryFast(Buffer.from(packId, 'hex'))
    return b ? { kind: b[0] === 0 ? 'data' : 'meta', size: b.readUInt32LE(1) } : undefined
  }

  /** Records packs and their blobs; `pending` marks them as not yet named by any index object. */
  addPacks(packs: readonly IndexedPack[], opts: { pending: boolean }): void {
    this.root.transactionSync(() => {
      for (const p of packs) {
        const pid = Buffer.from(p.packId, 'hex')
        this.packs.putSync(pid, encodePack(p))
        for (const e of p.entries) {
          // First location wins: duplicates across packs (from concurrent writers) are harmless.
          const k = Buffer.from(e.id, 'hex')
          if (!this.blobs.doesExist(k)) this.blobs.putSync(k, encodeLoc(p.packId, e))
        }
        if (opts.pending) this.pending.putSync(pid, encodeIndexedPack(p))
        else this.pending.removeSync(pid)
      }
    })
  }

  /** Packs uploaded by this cache's users but not yet named by an index object. */
  pendingPacks(): IndexedPack[] {
    const out: IndexedPack[] = []
    for (const { key, value } of this.pending.getRange()) out.push(decodeIndexedPack((key as Buffer).toString('hex'), value))
    return out
  }

  /** Marks packs as indexed. */
  clearPending(packIds: readonly string[]): void {
    this.root.transactionSync(() => {
      for (const id of packIds) this.pending.removeSync(Buffer.from(id, 'hex'))
    })
  }

  /** Names of index objects already loaded. */
  loadedIndexes(): Set<string> {
    const s = new Set<string>()
    for (const k of this.indexes.getKeys()) s.add(k as string)
    return s
  }

  /** Records that index object `name` was loaded with these packs. */
  addIndexObject(name: string, packs: readonly IndexedPack[]): void {
    this.addPacks(packs, { pending: false })
    this.indexes.putSync(name, '1')
  }

  /** Forgets all blob, pack and index knowledge (keeps pending packs and the file cache). */
  clearIndex(): void {
    this.root.transactionSync(() => {
      this.blobs.clearSync()
      this.packs.clearSync()
      this.indexes.clearSync()
    })
  }

  /** Number of known blobs. */
  blobCount(): number {
    return this.blobs.getCount()
  }

  /** Iterates every known blob and its location. */
  *allBlobs(): Generator<[string, BlobLocation]> {
    for (const { key, value } of this.blobs.getRange()) yield [(key as Buffer).toString('hex'), decodeLoc(value)]
  }

  /** File-change cache: what was stored for the file at (dev, inode), if anything. */
  getFile(dev: bigint, ino: bigint): FileCacheEntry | undefined {
    const b = this.files.getBinaryFast(fileKey(dev, ino))
    if (!b) return undefined
    const n = (b.length - 56) / 32
    const chunks: string[] = new Array(n)
    for (let i = 0; i < n; i++) chunks[i] = b.toString('hex', 56 + i * 32, 88 + i * 32)
    return {
      size: b.readBigUInt64LE(0),
      mtimeNs: b.readBigInt64LE(8),
      ctimeNs: b.readBigInt64LE(16),
      blake3: b.toString('hex', 24, 56),
      chunks,
    }
  }

  /** Remembers stored files, in one transaction. */
  putFiles(list: readonly { dev: bigint; ino: bigint; entry: FileCacheEntry }[]): void {
    this.root.transactionSync(() => {
      for (const { dev, ino, entry: e } of list) {
        const b = Buffer.allocUnsafe(56 + e.chunks.length * 32)
        b.writeBigUInt64LE(e.size, 0)
        b.writeBigInt64LE(e.mtimeNs, 8)
        b.writeBigInt64LE(e.ctimeNs, 16)
        b.write(e.blake3, 24, 32, 'hex')
        for (let i = 0; i < e.chunks.length; i++) b.write(e.chunks[i], 56 + i * 32, 32, 'hex')
        this.files.putSync(fileKey(dev, ino), b)
      }
    })
  }

  /** Waits for asynchronous writes to be committed. */
  async flush(): Promise<void> {
    await this.root.flushed
  }

  async close(): Promise<void> {
    await this.root.close()
  }
}

/**
 * Address space reserved for the cache's memory map (not memory: pages are
 * mapped as they are read). With lmdb-js's small default the map is
 * replaced, whole, each time the file outgrows it, and the old maps stay:
 * a 10 GB backup ended with the file mapped 8 times, each copy's pages
 * counted in RSS again (~150 MiB). Reserving 1 TiB once means one map.
 */
const MAP_SIZE = 2 ** 40

/**
 * The file-change table. Keys are (device, inode), big-endian: a walk meets
 * inodes in roughly ascending order (file systems hand them out in creation
 * order), so inserts append and lookups move forward through the table. With
 * little-endian keys (the table "files", up to 0.1.0) they landed on random
 * pages: pages were ~2/3 full, and a 150,000-file backup touched (and kept
 * mapped, counted in RSS) every page of the table.
 */
const FILES_DB = 'files-v2'

function fileKey(dev: bigint, ino: bigint): Buffer {
  const k = Buffer.allocUnsafe(16)
  k.writeBigUInt64BE(BigInt.asUintN(64, dev), 0)
  k.writeBigUInt64BE(BigInt.asUintN(64, ino), 8)
  return k
}

/** Drops the little-endian file table of older caches (its entries would never be found again). */
function dropOldFileTable(root: RootDatabase): void {
  // The root table's keys are the names of the named tables (a handful).
  if (![...root.getKeys()].includes('files')) return
  const old = root.openDB({ name: 'files', encoding: 'binary' })
  old.dropSync()
}

function encodeIndexedPack(p: IndexedPack): Buffer {
  const b = Buffer.alloc(5 + p.entries.length * PACK_ENTRY_BYTES)
  encodePack(p).copy(b, 0)
  let o = 5
  for (const e of p.entries) o = writeEntry(b, o, e)
  return b
}

function decodeIndexedPack(packId: string, b: Buffer): IndexedPack {
  const entries: PackEntry[] = []
  for (let o = 5; o + PACK_ENTRY_BYTES <= b.length; o += PACK_ENTRY_BYTES) entries.push(readEntry(b, o))
  return { packId, kind: b[0] === 0 ? 'data' : 'meta', size: b.readUInt32LE(1), entries }
}

/**
 * A read-only view of a cache's blob table, for worker threads that only
 * need to ask "is this blob stored already?".
 */
export class BlobPresence {
  private readonly root: RootDatabase
  private readonly blobs: Database<Buffer, Buffer>
  constructor(cachePath: string) {
    this.root = open({ path: join(cachePath, 'index.lmdb'), maxDbs: 16, readOnly: true, mapSize: MAP_SIZE })
    this.blobs = this.root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
  }
  has(id: Buffer): boolean {
    return this.blobs.doesExist(id)
  }
  async close(): Promise<void> {
    await this.root.close()
  }
}
