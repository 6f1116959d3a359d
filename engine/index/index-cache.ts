import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import type { BlobType } from '../types.js'
import { PACK_ENTRY_BYTES, readEntry, writeEntry, type Compression, type PackEntry, type PackKind } from '../pack/index.js'
import { hashBytes } from '../hash/index.js'
import { IdSet } from './id-set.js'
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
  private root: RootDatabase
  private blobs!: Database<Buffer, Buffer>
  private packs!: Database<Buffer, Buffer>
  private pending!: Database<Buffer, Buffer>
  private indexes!: Database<string, string>
  private files!: Database<Buffer, Buffer>
  private meta!: Database<string, string>
  private readonly path: string
  /**
   * Ids of the blobs in the blob table (see IdSet); saved beside the map at
   * close. Loaded on first use: commands that only read (ls, restore, serve)
   * never pay for it.
   */
  private loadedIds: IdSet | null = null
  /** `ids` changed since it was loaded or saved. */
  private idsDirty = false
  /** Pages read or written at random places since the map was last reopened (an estimate; see `trim`). */
  private touched = 0
  /** How often `trim` reopened the map (for tests and profiles). */
  trims = 0
  /** Packs whose blobs `excludeStored` took out of the id set, and those blobs' ids (put back before saving). */
  private readonly excludedPacks = new Set<string>()
  private excludedIds: Buffer[] = []

  private constructor(path: string) {
    this.path = path
    this.root = openRoot(path)
    dropOldFileTable(this.root)
    this.openTables()
  }

  private openTables(): void {
    const root = this.root
    this.blobs = root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.packs = root.openDB({ name: 'packs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.pending = root.openDB({ name: 'pending', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.indexes = root.openDB({ name: 'indexes', encoding: 'string' }) as unknown as Database<string, string>
    this.files = root.openDB({ name: FILES_DB, encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.meta = root.openDB({ name: 'meta', encoding: 'string' }) as unknown as Database<string, string>
  }

  /**
   * The blob table's generation: bumped whenever blobs leave it
   * (`clearIndex`), so that a saved id set from before is not trusted.
   */
  private generation(): number {
    return Number(this.meta.get('generation') ?? '0')
  }

  private get idsPath(): string {
    return `${this.path}.ids`
  }

  /** The id set saved at the last close, if it still matches the blob table. */
  private loadIds(): IdSet | null {
    let data: Buffer
    try {
      data = readFileSync(this.idsPath)
    } catch {
      return null
    }
    if (data.length < IDS_HEADER || data.toString('latin1', 0, 8) !== IDS_MAGIC) return null
    const generation = data.readUInt32LE(8)
    const count = data.readUInt32LE(12)
    if (generation !== this.generation() || count !== this.blobs.getCount() || data.length !== IDS_HEADER + count * 16) return null
    // A damaged set could claim a blob is stored that is not, and a backup would then skip storing it.
    if (!hashBytes(data.subarray(IDS_HEADER)).equals(data.subarray(16, IDS_HEADER))) return null
    return IdSet.deserialize(data.subarray(IDS_HEADER))
  }

  /** Builds the id set from the blob table, a slice at a time (trimming in between: see `trim`). */
  private rebuildIds(): IdSet {
    const ids = IdSet.create(this.blobs.getCount())
    let start: Buffer | undefined
    for (;;) {
      let n = 0
      let last: Buffer | undefined
      for (const k of this.blobs.getKeys({ start, limit: 20000 })) {
        const key = k as Buffer
        if (start && n === 0 && key.equals(start)) continue
        ids.add(key)
        last = Buffer.from(key)
        n++
      }
      if (!last) break
      start = last
      this.touched += n / 8 // a scan reads each page once
      this.trimIfWanted()
    }
    this.idsDirty = true
    return ids
  }

  /** Saves the id set beside the map (atomically), so the next open need not rebuild it. */
  private saveIds(): void {
    if (this.loadedIds) for (const k of this.excludedIds) this.loadedIds.add(k) // excluded for this process only
    this.excludedIds = []
    if (!this.idsDirty || !this.loadedIds) return
    const body = this.ids.serialize()
    const head = Buffer.alloc(IDS_HEADER)
    head.write(IDS_MAGIC, 0, 'latin1')
    head.writeUInt32LE(this.generation(), 8)
    head.writeUInt32LE(this.ids.size, 12)
    hashBytes(body).copy(head, 16)
    const tmp = `${this.idsPath}.${process.pid}.tmp`
    try {
      writeFileSync(tmp, Buffer.concat([head, body]), { mode: 0o600 })
      renameSync(tmp, this.idsPath)
      this.idsDirty = false
    } catch {
      rmSync(tmp, { force: true }) // a cache: the next open rebuilds it
    }
  }

  private get ids(): IdSet {
    return (this.loadedIds ??= this.loadIds() ?? this.rebuildIds())
  }

  /** The set of stored blob ids, shared with the backup's workers (replaced as it grows: ask again). */
  storedIds(): IdSet {
    return this.ids
  }

  /** Opens (creating) the cache of repository `repoId` under `cacheDir`. */
  static open(cacheDir: string, repoId: string): IndexCache {
    const dir = join(cacheDir, repoId)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    return new IndexCache(join(dir, 'index.lmdb'))
  }

  /**
   * True when enough of the map has been read at random places that
   * reopening it (`trim`) is worth it. Blob ids are random, so each blob
   * lookup or insert lands on its own page, and every page read stays
   * mapped, counted in the process's resident memory, until the map is
   * closed: without trims a 10 GB backup ended with the whole 70 MB file
   * resident, a 100 GB one would hold ~700 MB.
   */
  get wantsTrim(): boolean {
    return this.touched >= TRIM_AFTER_TOUCHES
  }

  /**
   * Closes and reopens the memory map, which unmaps the pages read so far.
   * Synchronous: no other code can use the cache in between. (lmdb-js shares
   * one environment per file among the threads of a process, and unmaps it
   * when the last one closes it: no other thread opens this cache; the
   * backup's workers use the id set.) Must not be called while an iterator
   * over a table (`allBlobs`) is open: `trimIfWanted` checks.
   */
  trim(): void {
    const closing = this.root.close() as unknown
    void closing
    if ((this.root as unknown as { status: string }).status !== 'closed') {
      // lmdb-js closes asynchronously only when asynchronous writes are pending; this cache makes none.
      throw new Error('index cache: the map did not close synchronously')
    }
    this.root = openRoot(this.path)
    this.openTables()
    this.touched = 0
    this.trims++
  }

  /** Open iterators over a table: the map must not be reopened under them. */
  private iterating = 0

  /** `trim`s when it is worth it (see `wantsTrim`) and safe (no iterator open). */
  trimIfWanted(): void {
    if (this.iterating === 0 && this.wantsTrim) this.trim()
  }

  /** Location of blob `id`, or undefined. */
  getBlob(id: string): BlobLocation | undefined {
    this.touched++
    const b = this.blobs.getBinaryFast(Buffer.from(id, 'hex'))
    return b ? decodeLoc(b) : undefined
  }

  /**
   * Makes the blobs of `packs` look not stored to `hasBlob` and `storedIds` for the rest of this process
   * (locations stay in the blob table, so reads still find them): a backup stores them again instead of
   * reusing them, because a prune plans to delete these packs (engine/gc). Blobs of these packs recorded
   * later are not added to the set either; another pack holding the same blob adds it as usual. Call it
   * before the backup's workers start (the set is changed in place).
   */
  excludeStored(packs: readonly { packId: string; entries: readonly { id: string }[] }[]): void {
    const ids = this.ids
    for (const p of packs) {
      this.excludedPacks.add(p.packId)
      for (const e of p.entries) {
        const k = Buffer.from(e.id, 'hex')
        if (ids.delete(k)) this.excludedIds.push(k)
      }
    }
  }

  /** True for a pack `excludeStored` took out of deduplication (a prune plans to delete it). */
  isExcludedPack(packId: string): boolean {
    return this.excludedPacks.has(packId)
  }

  /** True when blob `id` is stored (from the in-memory id set: no page of the map is read). */
  hasBlob(id: string): boolean {
    return this.ids.hasHex(id)
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
        this.touched += p.entries.length + 1
        const pid = Buffer.from(p.packId, 'hex')
        this.packs.putSync(pid, encodePack(p))
        for (const e of p.entries) {
          // First location wins: duplicates across packs (from concurrent writers) are harmless.
          const k = Buffer.from(e.id, 'hex')
          // Not loaded yet: nothing to keep in step (the saved set no longer matches the table's count, and is rebuilt).
          if (!this.excludedPacks.has(p.packId) && this.loadedIds?.add(k)) this.idsDirty = true
          this.blobs.putSync(k, encodeLoc(p.packId, e), { noOverwrite: true })
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

  /**
   * Records that index object `name` names these pending packs (whose blobs
   * and packs `addPacks` recorded already): clears their pending mark.
   */
  markIndexed(name: string, packIds: readonly string[]): void {
    this.root.transactionSync(() => {
      for (const id of packIds) this.pending.removeSync(Buffer.from(id, 'hex'))
      this.indexes.putSync(name, '1')
    })
  }

  /** Records that index object `name` was loaded with these packs. */
  addIndexObject(name: string, packs: readonly IndexedPack[]): void {
    this.addPacks(packs, { pending: false })
    this.indexes.putSync(name, '1')
  }

  /**
   * Forgets all blob, pack and index knowledge (keeps the file cache, and the
   * pending packs, whose blobs it records again: a pending pack's blobs are
   * always in the blob table, see `markIndexed`).
   */
  clearIndex(): void {
    rmSync(this.idsPath, { force: true })
    this.root.transactionSync(() => {
      this.blobs.clearSync()
      this.packs.clearSync()
      this.indexes.clearSync()
      this.meta.putSync('generation', String(this.generation() + 1))
    })
    this.loadedIds = IdSet.create()
    this.idsDirty = true
    this.addPacks(this.pendingPacks(), { pending: true })
  }

  /** Number of known blobs. */
  blobCount(): number {
    return this.blobs.getCount()
  }

  /** Iterates every known blob and its location. */
  *allBlobs(): Generator<[string, BlobLocation]> {
    this.iterating++
    try {
      for (const { key, value } of this.blobs.getRange()) yield [(key as Buffer).toString('hex'), decodeLoc(value)]
    } finally {
      this.iterating--
    }
  }

  /** File-change cache: what was stored for the file at (dev, inode), if anything. */
  getFile(dev: bigint, ino: bigint): FileCacheEntry | undefined {
    this.touched += FILE_TOUCH
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
      this.touched += list.length * FILE_TOUCH
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

  /**
   * Records that a writing run (a backup) started with this cache and returns its token; `endRun`
   * removes it when the run finished. A token still there at the next run's start means a run died
   * (killed, power lost) after it may have renamed packs into place that it did not live to record:
   * the next run then looks for them (`Repository.adoptUnindexedPacks`) instead of storing them again.
   */
  beginRun(startedIso: string): string {
    const token = `run:${startedIso}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
    this.meta.putSync(token, startedIso)
    return token
  }

  /** Removes a run's token (it finished, or what it left was taken up). */
  endRun(token: string): void {
    this.meta.removeSync(token)
  }

  /** Tokens of runs that started and did not finish (or are still running in another process). */
  unfinishedRuns(): string[] {
    const out: string[] = []
    for (const k of this.meta.getKeys({ start: 'run:', end: 'run;' })) out.push(k as string)
    return out
  }

  /** Waits for asynchronous writes to be committed. */
  async flush(): Promise<void> {
    await this.root.flushed
  }

  async close(): Promise<void> {
    this.saveIds()
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
 * Random page touches between `trim`s. A page fault also maps neighbouring
 * pages already in the page cache (the kernel's fault-around), so a random
 * lookup leaves ~75 KiB of the map resident (measured): trimming every 128
 * touches bounds that to ~10 MiB at any repository size (without trims a
 * 10 GB backup ended with the whole 70 MB file resident). A reopen costs
 * ~1 ms: ~2 % of a first backup's time, less for later ones.
 */
const TRIM_AFTER_TOUCHES = 128

/**
 * The file-change table's keys follow the walk's order (see FILES_DB), so its
 * lookups and inserts share pages: they count as a quarter of a random touch.
 */
const FILE_TOUCH = 0.25

function openRoot(path: string): RootDatabase {
  return open({ path, maxDbs: 16, mapSize: MAP_SIZE })
}

/**
 * The file-change table. Keys are (device, inode), big-endian: a walk meets
 * inodes in roughly ascending order (file systems hand them out in creation
 * order), so inserts append and lookups move forward through the table. With
 * little-endian keys (the table "files", up to 0.1.0) they landed on random
 * pages: pages were ~2/3 full, and a 150,000-file backup touched (and kept
 * mapped, counted in RSS) every page of the table.
 */
const FILES_DB = 'files-v2'

/**
 * The saved id set (`index.lmdb.ids`): magic, the blob table's generation
 * (u32 LE), count (u32 LE), BLAKE3 of the rest (32 bytes), then 16 bytes per id.
 */
const IDS_MAGIC = 'CSIDS001'
const IDS_HEADER = 48

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
