import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import { PACK_ENTRY_BYTES, readEntry, writeEntry, type Compression, type PackEntry, type PackKind } from '../pack/index.js'
import { hashBytes } from '../hash/index.js'
import { BlobTable, type BlobLocation } from './blob-table.js'
import { FileTable, type FileCacheEntry } from './file-table.js'
import { IdSet } from './id-set.js'
import type { IndexedPack } from './index-object.js'

export type { BlobLocation } from './blob-table.js'
export type { FileCacheEntry } from './file-table.js'

function encodePack(p: IndexedPack): Buffer {
  const head = Buffer.allocUnsafe(5)
  head[0] = p.kind === 'data' ? 0 : 1
  head.writeUInt32LE(p.size, 1)
  return head
}

/**
 * The local cache of one repository: blob → pack location, known packs,
 * packs uploaded but not yet named by an index object ("pending"), index
 * objects already loaded, and the file-change cache.
 *
 * The two large tables, blobs and files, are slot files read and written
 * with pread/pwrite (`blobs.table`, `files.table`; see SlotFile): their
 * size, up to hundreds of MB for large repositories, never counts in the
 * process's memory. The small ones (packs, pending, loaded index objects)
 * are in LMDB (`index.lmdb`), whose write transactions also serialize
 * writers of the slot files across processes.
 *
 * It is a cache: everything in it can be rebuilt from the remote (index
 * objects, pack headers). Several processes may open it at once.
 *
 * Invariants: a pending pack is recorded (LMDB) before its blobs are added
 * to the blob table, so a crash in between leaves blobs unknown (stored
 * again later: harmless), never blobs known whose pack nothing will index;
 * and the blob table is made durable before LMDB records an index object
 * as loaded or a pending pack as indexed.
 */
export class IndexCache {
  private readonly root: RootDatabase
  private packs!: Database<Buffer, Buffer>
  private pending!: Database<Buffer, Buffer>
  private indexes!: Database<string, string>
  private meta!: Database<string, string>
  private readonly dir: string
  private readonly path: string
  private readonly blobs: BlobTable
  private fileTable: FileTable | null = null
  /**
   * Ids of the blobs in the blob table (see IdSet); saved beside it at
   * close. Loaded on first use: commands that only read (ls, restore, serve)
   * never pay for it.
   */
  private loadedIds: IdSet | null = null
  /** `ids` changed since it was loaded or saved. */
  private idsDirty = false
  /** Pending packs whose blobs this process added (others' may lack theirs after a crash: see `markIndexed`). */
  private readonly addedHere = new Set<string>()
  /** Index objects whose packs are in the tables but not yet recorded as loaded (see `addIndexObject`). */
  private unrecordedIndexes: string[] = []
  /** Packs whose blobs `excludeStored` took out of the id set, and those blobs' ids (put back before saving). */
  private readonly excludedPacks = new Set<string>()
  private excludedIds: Buffer[] = []

  private constructor(dir: string) {
    this.dir = dir
    this.path = join(dir, 'index.lmdb')
    this.root = open({ path: this.path, maxDbs: 16, mapSize: MAP_SIZE })
    this.packs = this.root.openDB({ name: 'packs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.pending = this.root.openDB({ name: 'pending', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
    this.indexes = this.root.openDB({ name: 'indexes', encoding: 'string' }) as unknown as Database<string, string>
    this.meta = this.root.openDB({ name: 'meta', encoding: 'string' }) as unknown as Database<string, string>
    this.blobs = BlobTable.open(join(dir, 'blobs.table'))
    this.root.transactionSync(() => {
      const migrated = this.moveOldTables()
      if (this.blobs.created && !migrated && this.indexes.getKeysCount() > 0) {
        // The blob table was lost (deleted, damaged): what the cache says it loaded is no longer there.
        this.forgetBlobs()
        this.readdPending()
      }
    })
  }

  /** Opens (creating) the cache of repository `repoId` under `cacheDir`. */
  static open(cacheDir: string, repoId: string): IndexCache {
    const dir = join(cacheDir, repoId)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    return new IndexCache(dir)
  }

  /** The file-change cache, opened on first use (only backups use it). */
  private get files(): FileTable {
    return (this.fileTable ??= FileTable.open(join(this.dir, 'files.table')))
  }

  /**
   * Moves the tables of caches made before the slot files (LMDB tables
   * `blobs` and `files-v2`) into them, and drops those and the older
   * little-endian `files` table. In the open's write transaction. True when
   * blobs were moved.
   */
  private moveOldTables(): boolean {
    // The root table's keys are the names of the named tables (a handful).
    const names = [...this.root.getKeys()].map(String)
    let moved = false
    if (names.includes('blobs')) {
      const old = this.root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
      this.blobs.beginWrite()
      for (const { key, value } of old.getRange()) this.blobs.add(key, decodeOldLoc(value))
      this.blobs.endWrite()
      this.blobs.sync()
      old.dropSync()
      moved = true
    }
    if (names.includes('files-v2')) {
      const old = this.root.openDB({ name: 'files-v2', encoding: 'binary', keyEncoding: 'binary' }) as unknown as Database<Buffer, Buffer>
      let batch: { dev: bigint; ino: bigint; entry: FileCacheEntry }[] = []
      for (const { key, value } of old.getRange()) {
        batch.push({ dev: key.readBigUInt64BE(0), ino: key.readBigUInt64BE(8), entry: decodeOldFile(value) })
        if (batch.length >= 4096) {
          this.files.putAll(batch)
          batch = []
        }
      }
      if (batch.length) this.files.putAll(batch)
      old.dropSync()
    }
    if (names.includes('files')) this.root.openDB({ name: 'files', encoding: 'binary' }).dropSync()
    return moved
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
    if (generation !== this.generation() || count !== this.blobCount() || data.length !== IDS_HEADER + count * 16) return null
    // A damaged set could claim a blob is stored that is not, and a backup would then skip storing it.
    if (!hashBytes(data.subarray(IDS_HEADER)).equals(data.subarray(16, IDS_HEADER))) return null
    return IdSet.deserialize(data.subarray(IDS_HEADER))
  }

  /** Builds the id set from the blob table (one sequential read of it). */
  private rebuildIds(): IdSet {
    const ids = IdSet.create(this.blobs.count)
    let n = 0
    for (const [id] of this.blobs.entries()) {
      ids.add(id)
      n++
    }
    // A run that died mid-write leaves the header's count off, and a saved set would never match it again.
    if (n !== this.blobs.readCount()) this.root.transactionSync(() => this.blobs.recount())
    this.idsDirty = true
    return ids
  }

  /** Saves the id set beside the tables (atomically), so the next open need not rebuild it. */
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
    if (!this.loadedIds) {
      this.loadedIds = this.loadIds() ?? this.rebuildIds()
      this.addPendingBlobs()
    }
    return this.loadedIds
  }

  /**
   * Adds the blobs of pending packs that the blob table lacks: a run that
   * died between recording a pack and adding its blobs left them out, and
   * the pack is on the remote and will be indexed, so its blobs are reused.
   */
  private addPendingBlobs(): void {
    const ids = this.loadedIds!
    const missing = this.pendingPacks().filter((p) => !this.addedHere.has(p.packId) && p.entries.some((e) => !ids.hasHex(e.id)))
    if (missing.length) this.addBlobs(missing)
  }

  /** The set of stored blob ids, shared with the backup's workers (replaced as it grows: ask again). */
  storedIds(): IdSet {
    return this.ids
  }

  /** Location of blob `id`, or undefined. */
  getBlob(id: string): BlobLocation | undefined {
    return this.blobs.get(Buffer.from(id, 'hex'))
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

  /** True when blob `id` is stored (from the in-memory id set). */
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
    // Packs (and pending marks) first, committed; then the blobs (see the invariants above).
    this.root.transactionSync(() => {
      for (const p of packs) {
        const pid = Buffer.from(p.packId, 'hex')
        this.packs.putSync(pid, encodePack(p))
        if (opts.pending) this.pending.putSync(pid, encodeIndexedPack(p))
        else this.pending.removeSync(pid)
      }
    })
    this.addBlobs(packs)
    if (opts.pending) for (const p of packs) this.addedHere.add(p.packId)
  }

  /** Adds the blobs of `packs` to the blob table (and the id set when loaded), under the writers' lock. */
  private addBlobs(packs: readonly IndexedPack[]): void {
    this.root.transactionSync(() => {
      this.blobs.beginWrite()
      try {
        for (const p of packs) {
          for (const e of p.entries) {
            // First location wins: duplicates across packs (from concurrent writers) are harmless.
            const k = Buffer.from(e.id, 'hex')
            // Not loaded yet: nothing to keep in step (the saved set no longer matches the table's count, and is rebuilt).
            // Packs a prune plans to delete (excludeStored) stay out of the id set for this process.
            if (!this.excludedPacks.has(p.packId) && this.loadedIds?.add(k)) this.idsDirty = true
            this.blobs.add(k, { packId: p.packId, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength })
          }
        }
      } finally {
        this.blobs.endWrite()
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
    const s = new Set<string>(this.unrecordedIndexes)
    for (const k of this.indexes.getKeys()) s.add(k as string)
    return s
  }

  /**
   * Records that index object `name` names these pending packs (whose blobs
   * and packs `addPacks` recorded already): clears their pending mark.
   */
  markIndexed(name: string, packIds: readonly string[]): void {
    // Pending packs another process (or a run that crashed) recorded may lack their blobs: add them first.
    const others = new Set(packIds.filter((id) => !this.addedHere.has(id)))
    if (others.size) this.addBlobs(this.pendingPacks().filter((p) => others.has(p.packId)))
    this.blobs.sync()
    this.root.transactionSync(() => {
      for (const id of packIds) this.pending.removeSync(Buffer.from(id, 'hex'))
      this.indexes.putSync(name, '1')
    })
    for (const id of packIds) this.addedHere.delete(id)
  }

  /**
   * Records that index object `name` was loaded with these packs. Its name
   * is recorded as loaded in batches, after the blob table is made durable
   * (one sync per batch, not per object); until then `loadedIndexes` lists it.
   */
  addIndexObject(name: string, packs: readonly IndexedPack[]): void {
    this.addPacks(packs, { pending: false })
    this.unrecordedIndexes.push(name)
    if (this.unrecordedIndexes.length >= RECORD_INDEXES_EVERY) this.recordIndexes()
  }

  private recordIndexes(): void {
    if (this.unrecordedIndexes.length === 0) return
    const names = this.unrecordedIndexes
    this.unrecordedIndexes = []
    this.blobs.sync()
    this.root.transactionSync(() => {
      for (const n of names) this.indexes.putSync(n, '1')
    })
  }

  /** Empties the blob table and what says what it holds; in a write transaction. */
  private forgetBlobs(): void {
    rmSync(this.idsPath, { force: true })
    this.blobs.clear()
    this.packs.clearSync()
    this.indexes.clearSync()
    this.unrecordedIndexes = []
    this.meta.putSync('generation', String(this.generation() + 1))
    this.loadedIds = IdSet.create()
    this.idsDirty = true
  }

  /** Records the pending packs' blobs again (after the blob table was emptied). */
  private readdPending(): void {
    const pending = this.pendingPacks()
    for (const p of pending) this.packs.putSync(Buffer.from(p.packId, 'hex'), encodePack(p))
    this.blobs.beginWrite()
    for (const p of pending) {
      for (const e of p.entries) {
        const k = Buffer.from(e.id, 'hex')
        this.loadedIds?.add(k)
        this.blobs.add(k, { packId: p.packId, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength })
      }
    }
    this.blobs.endWrite()
  }

  /**
   * Forgets all blob, pack and index knowledge (keeps the file cache, and the
   * pending packs, whose blobs it records again: a pending pack's blobs are
   * always in the blob table, see `markIndexed`).
   */
  clearIndex(): void {
    this.root.transactionSync(() => {
      this.forgetBlobs()
      this.readdPending()
    })
  }

  /** Number of known blobs. */
  blobCount(): number {
    return this.blobs.readCount()
  }

  /** Iterates every known blob and its location (in no particular order). */
  *allBlobs(): Generator<[string, BlobLocation]> {
    for (const [id, loc] of this.blobs.entries()) yield [id.toString('hex'), loc]
  }

  /** File-change cache: what was stored for the file at (dev, ino), if anything. */
  getFile(dev: bigint, ino: bigint): FileCacheEntry | undefined {
    return this.files.get(dev, ino)
  }

  /** Remembers stored files, in one transaction. */
  putFiles(list: readonly { dev: bigint; ino: bigint; entry: FileCacheEntry }[]): void {
    this.root.transactionSync(() => this.files.putAll(list))
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

  /** Waits for asynchronous writes to be committed, and records loaded index objects. */
  async flush(): Promise<void> {
    this.recordIndexes()
    await this.root.flushed
  }

  async close(): Promise<void> {
    this.recordIndexes()
    this.saveIds()
    this.blobs.close()
    this.fileTable?.close()
    await this.root.close()
  }
}

/**
 * Address space reserved for the LMDB map (not memory: pages are mapped as
 * they are read). With lmdb-js's small default the map is replaced, whole,
 * each time the file outgrows it, and the old maps stay.
 */
const MAP_SIZE = 2 ** 40

/** Index objects loaded between two records of their names (each record costs a sync of the blob table). */
const RECORD_INDEXES_EVERY = 64

/**
 * The saved id set (`index.lmdb.ids`): magic, the blob table's generation
 * (u32 LE), count (u32 LE), BLAKE3 of the rest (32 bytes), then 16 bytes per id.
 */
const IDS_MAGIC = 'CSIDS001'
const IDS_HEADER = 48

/** A location as the LMDB blob table of older caches stored it (46 bytes). */
function decodeOldLoc(b: Buffer): BlobLocation {
  return {
    packId: b.toString('hex', 0, 32),
    type: b[32] === 0 ? 'data' : 'tree',
    compression: b[33] as Compression,
    offset: b.readUInt32LE(34),
    length: b.readUInt32LE(38),
    rawLength: b.readUInt32LE(42),
  }
}

/** A file entry as the LMDB file table of older caches stored it. */
function decodeOldFile(b: Buffer): FileCacheEntry {
  const n = (b.length - 56) / 32
  const chunks: string[] = new Array(n)
  for (let i = 0; i < n; i++) chunks[i] = b.toString('hex', 56 + i * 32, 88 + i * 32)
  return { size: b.readBigUInt64LE(0), mtimeNs: b.readBigInt64LE(8), ctimeNs: b.readBigInt64LE(16), blake3: b.toString('hex', 24, 56), chunks }
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
