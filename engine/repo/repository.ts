import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DEFAULT_CHUNKER_ALGORITHM, DEFAULT_CHUNKER_PARAMS, CHUNKER_ALGORITHMS, gearTable, validateChunkerParams, type ChunkerAlgorithm, type ChunkerParams } from '../chunker/index.js'
import {
  AesGcmSealer, DEFAULT_KDF, PlainSealer, deriveRepoKeys, parseKeyFile, unwrapMasterKey, wrapMasterKey,
  type KdfParams, type RepoKeys, type Sealer,
} from '../crypto/index.js'
import { ConfigError, ExistsError, FormatError, IntegrityError, NotFoundError, PasswordError, KeyError, isNotFound } from '../errors.js'
import { IdHasher, hashHex } from '../hash/index.js'
import { IndexCache, decodeIndexObject, encodeIndexObject, type BlobLocation, type IndexedPack } from '../index/index.js'
import { decodeBlob, decodeTrailer, packObjectName, PackWriter, type SealedPack, type PackEntry, type PackKind } from '../pack/index.js'
import { createObjectWriter, type ObjectWriter, type Remote } from '../remote/index.js'
import type { BlobType } from '../types.js'
import { FORMAT_VERSION, checkPackSize, parseConfig, type RepoConfig } from './config.js'

/** Options of `Repository.init`. */
export interface InitOptions {
  /** Password; null creates an unencrypted repository (an explicit choice). */
  password: string | null
  kdf?: KdfParams
  chunker?: ChunkerParams
  /** Default `gear32z-fastcdc`; `gear32-fastcdc` makes a repository that cuts like those of coldstore 0.1.0. */
  chunkerAlgorithm?: ChunkerAlgorithm
  packSizeBytes?: number
  compressionLevel?: number
  hostname: string
  username: string
  now: Date
}

/** Options of `Repository.open`. */
export interface OpenOptions {
  /** Password; may be null only for unencrypted repositories. */
  password: string | null
  /** Per-user cache directory; the repository's cache lives in `<cacheDir>/<repo id>/`. */
  cacheDir: string
}

/** Reports progress of long repository operations (index loading, repair). */
export interface RepoProgress {
  (event: { phase: string; done: number; total: number }): void
}

export const DEFAULT_PACK_BYTES = 16 * 1024 * 1024

/** A pack object's name: kind, two-character fan-out, id. */
const PACK_NAME = /^(data|meta)\/[0-9a-f]{2}\/([0-9a-f]{64})$/

/** Which pack kind holds blobs of a type. */
export function packKindOf(type: BlobType): PackKind {
  return type === 'data' ? 'data' : 'meta'
}

/**
 * A repository: the only module combining remote, crypto, packs and the
 * index cache. Writers add packs, then index objects, then snapshot objects,
 * and never modify an object.
 */
export class Repository {
  readonly remote: Remote
  readonly config: RepoConfig
  readonly sealer: Sealer
  readonly ids: IdHasher
  readonly gear: Uint32Array
  readonly chunkerParams: ChunkerParams
  readonly cache: IndexCache
  /** Subkeys (null when unencrypted); handed to worker threads that seal blobs. */
  readonly keys: RepoKeys | null
  readonly cachePath: string
  /** Bytes of index objects this instance has written (for "added bytes" reports). */
  indexBytesWritten = 0

  private constructor(f: {
    remote: Remote; config: RepoConfig; keys: RepoKeys | null; cache: IndexCache; cachePath: string
  }) {
    this.remote = f.remote
    this.config = f.config
    this.keys = f.keys
    this.cache = f.cache
    this.cachePath = f.cachePath
    this.sealer = f.keys ? new AesGcmSealer(f.keys.encKey) : new PlainSealer()
    this.ids = new IdHasher(f.keys ? f.keys.idKey : null)
    this.chunkerParams = { minBytes: f.config.chunker.min_bytes, avgBytes: f.config.chunker.avg_bytes, maxBytes: f.config.chunker.max_bytes }
    this.gear = gearTable(f.keys ? f.keys.gearSeed : Buffer.from(f.config.chunker.seed ?? '', 'hex'), f.config.chunker.algorithm)
  }

  /** Creates a repository on an empty remote. Fails with ExistsError when one is there already. */
  static async init(remote: Remote, o: InitOptions): Promise<RepoConfig> {
    const chunker = o.chunker ?? DEFAULT_CHUNKER_PARAMS
    validateChunkerParams(chunker)
    const algorithm = o.chunkerAlgorithm ?? DEFAULT_CHUNKER_ALGORITHM
    if (!CHUNKER_ALGORITHMS.includes(algorithm)) throw new ConfigError(`unknown chunker algorithm ${algorithm} (known: ${CHUNKER_ALGORITHMS.join(', ')})`)
    const packSizeBytes = o.packSizeBytes ?? DEFAULT_PACK_BYTES
    checkPackSize(packSizeBytes)
    const level = o.compressionLevel ?? 3
    if (!Number.isInteger(level) || level < 0 || level > 22) throw new ConfigError(`compression level must be 0–22, got ${level}`)
    try {
      await remote.stat('config')
      throw new ExistsError('config', `a repository already exists at ${remote.properties.location}`)
    } catch (err) {
      if (!isNotFound(err)) throw err
    }
    const config: RepoConfig = {
      format: 'coldstore',
      version: FORMAT_VERSION,
      id: randomBytes(32).toString('hex'),
      created: o.now.toISOString(),
      encryption: o.password === null ? 'none' : 'aes-256-gcm',
      chunker: {
        algorithm,
        min_bytes: chunker.minBytes,
        avg_bytes: chunker.avgBytes,
        max_bytes: chunker.maxBytes,
        ...(o.password === null ? { seed: randomBytes(32).toString('hex') } : {}),
      },
      pack_size_bytes: packSizeBytes,
      compression: { algorithm: 'zstd', level },
    }
    if (o.password !== null) {
      if (o.password.length === 0) throw new ConfigError('empty password: give a password, or choose --no-encryption explicitly')
      const master = randomBytes(32)
      const keyFile = await wrapMasterKey(master, o.password, o.kdf ?? DEFAULT_KDF, {
        hostname: o.hostname, username: o.username, created: o.now.toISOString(),
      })
      const bytes = Buffer.from(JSON.stringify(keyFile, null, 2) + '\n')
      await remote.put(`keys/${hashHex(bytes)}`, bytes)
    }
    // config last: a repository without config is not a repository, so a crash here leaves nothing half-made.
    await remote.put('config', Buffer.from(JSON.stringify(config, null, 2) + '\n'), { exclusive: true })
    return config
  }

  /** Opens a repository: reads config, unlocks a key, opens the local cache. Does not load the index (see `syncIndex`). */
  static async open(remote: Remote, o: OpenOptions): Promise<Repository> {
    let configBytes: Buffer
    try {
      configBytes = await remote.get('config')
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError('config', `no repository at ${remote.properties.location} (run 'coldstore init' first)`, { cause: err })
      throw err
    }
    const config = parseConfig(configBytes)
    let keys: RepoKeys | null = null
    if (config.encryption !== 'none') {
      if (o.password === null) throw new PasswordError('this repository is encrypted: a password is needed')
      keys = deriveRepoKeys(await unlock(remote, o.password))
    }
    const cache = IndexCache.open(o.cacheDir, config.id)
    return new Repository({ remote, config, keys, cache, cachePath: `${o.cacheDir}/${config.id}` })
  }

  /**
   * Brings the local cache up to date with the remote's index objects: loads
   * new ones; rebuilds from scratch when index objects it had loaded are gone
   * (compacted or repaired elsewhere). One missing from the listing but still
   * there (stat: a listing that lags behind recent writes) counts as present.
   */
  async syncIndex(progress?: RepoProgress): Promise<void> {
    await this.dropLostPendingPacks()
    const remoteNames = new Set<string>()
    for await (const o of this.remote.list('index/')) remoteNames.add(o.name)
    const loaded = this.cache.loadedIndexes()
    // A loaded index object missing from the listing was deleted (a prune compacted the index, repair
    // rebuilt it), or the listing lags behind recent writes (an eventually consistent store). Reads are
    // read-after-write, so a stat tells the two apart: without it, a lagging listing made this cache
    // forget blobs that are stored (the next backup stored them again, and restores of the snapshots
    // naming them failed with "not in the index" until the listing caught up).
    const unlisted = [...loaded].filter((n) => !remoteNames.has(n))
    await forEachLimit(unlisted, this.remote.properties.maxConnections, async (name) => {
      try {
        await this.remote.stat(name)
        remoteNames.add(name)
      } catch (err) {
        if (!isNotFound(err)) throw err
      }
    })
    let stale = false
    for (const n of loaded) if (!remoteNames.has(n)) stale = true
    if (stale) this.cache.clearIndex()
    const have = stale ? new Set<string>() : loaded
    const todo = [...remoteNames].filter((n) => !have.has(n))
    let done = 0
    await forEachLimit(todo, this.remote.properties.maxConnections, async (name) => {
      let packs: IndexedPack[]
      try {
        packs = await this.loadIndexObject(name)
      } catch (err) {
        if (err instanceof IntegrityError || err instanceof FormatError) {
          throw new IntegrityError(`${err.message}; run 'coldstore verify' to see the damage and 'coldstore repair index' to rebuild the index from the packs`, {}, { cause: err })
        }
        throw err
      }
      this.cache.addIndexObject(name, packs)
      progress?.({ phase: 'index', done: ++done, total: todo.length })
    })
  }

  /**
   * Forgets pending packs (uploaded by an interrupted run, not yet indexed)
   * that are gone from the remote or have another size (lost write, pruned
   * elsewhere). Their blobs are in the cache's blob table, where a backup
   * would take them as stored and write snapshots naming them: the table is
   * rebuilt without them (from the remaining pending packs here, from the
   * index objects by the rest of `syncIndex`), so they are stored again.
   */
  private async dropLostPendingPacks(): Promise<void> {
    const pending = this.cache.pendingPacks()
    if (pending.length === 0) return
    const lost = new Set<string>()
    await forEachLimit(pending, this.remote.properties.maxConnections, async (p) => {
      try {
        if ((await this.remote.stat(packObjectName(p.kind, p.packId))).size !== p.size) lost.add(p.packId)
      } catch (err) {
        if (!isNotFound(err)) throw err
        lost.add(p.packId)
      }
    })
    if (lost.size === 0) return
    this.cache.clearPending([...lost])
    this.cache.clearIndex() // records the remaining pending packs' blobs again
  }

  /** Reads and decodes one index object, checking that its content matches its name. */
  async loadIndexObject(name: string): Promise<IndexedPack[]> {
    const bytes = await this.remote.get(name)
    const id = name.slice('index/'.length)
    if (hashHex(bytes) !== id) throw new IntegrityError(`${name}: content does not match its name (damaged)`)
    return decodeIndexObject(bytes, this.sealer, name)
  }

  /**
   * Writes an index object naming `packs`; returns its object name.
   * `pending`: the packs are this cache's pending packs, whose blobs it has
   * recorded already (then only their pending mark is cleared).
   */
  async writeIndexObject(packs: readonly IndexedPack[], o: { pending?: boolean } = {}): Promise<string> {
    const bytes = encodeIndexObject(packs, this.sealer)
    const name = `index/${hashHex(bytes)}`
    await this.remote.put(name, bytes)
    this.indexBytesWritten += bytes.length
    if (o.pending) this.cache.markIndexed(name, packs.map((p) => p.packId))
    else this.cache.addIndexObject(name, packs)
    return name
  }

  /**
   * Writes one index object for every pack uploaded but not yet indexed
   * (also those left by an interrupted run, after checking they still exist).
   */
  async indexPendingPacks(): Promise<string | null> {
    const pending = this.cache.pendingPacks()
    if (pending.length === 0) return null
    const present: IndexedPack[] = []
    const gone: string[] = []
    await forEachLimit(pending, this.remote.properties.maxConnections, async (p) => {
      try {
        const st = await this.remote.stat(packObjectName(p.kind, p.packId))
        if (st.size === p.size) present.push(p)
        else gone.push(p.packId)
      } catch (err) {
        if (!isNotFound(err)) throw err
        gone.push(p.packId)
      }
    })
    this.cache.clearPending(gone)
    if (present.length === 0) return null
    present.sort((a, b) => (a.packId < b.packId ? -1 : 1))
    return this.writeIndexObject(present, { pending: true })
  }

  /**
   * Finds packs on the remote that neither an index object nor the local cache knows (a run renamed
   * them into place but was killed before recording them), reads their headers and records them in the
   * cache as pending, so the next backup reuses their blobs instead of storing them again and indexes
   * them at its end. Packs whose header cannot be read are left alone (verify reports them; repair
   * index decides). Lists every pack: for runs that follow an interrupted one, not for every run.
   */
  async adoptUnindexedPacks(): Promise<{ packs: number; bytes: number }> {
    const unknown: { kind: PackKind; id: string; size: number }[] = []
    for (const kind of ['data', 'meta'] as const) {
      for await (const o of this.remote.list(`${kind}/`)) {
        const m = PACK_NAME.exec(o.name)
        // Not a pack a prune plans to delete (see IndexCache.excludeStored): a snapshot must not come to need it.
        if (m && m[1] === kind && !this.cache.hasPack(m[2]) && !this.cache.isExcludedPack(m[2])) unknown.push({ kind, id: m[2], size: o.size })
      }
    }
    const adopted: IndexedPack[] = []
    await forEachLimit(unknown, this.remote.properties.maxConnections, async (p) => {
      try {
        const entries = await this.readPackHeader(p.kind, p.id, p.size)
        adopted.push({ packId: p.id, kind: p.kind, size: p.size, entries })
      } catch {
        // damaged or foreign: not ours to adopt
      }
    })
    if (adopted.length) this.cache.addPacks(adopted, { pending: true })
    return { packs: adopted.length, bytes: adopted.reduce((s, p) => s + p.size, 0) }
  }

  /** Commits a pack written through `newPackWriter` (atomic, durable) and records its blobs in the cache as pending. */
  async savePack(object: ObjectWriter, pack: SealedPack): Promise<void> {
    await object.commit(packObjectName(pack.kind, pack.id))
    this.cache.addPacks([{ packId: pack.id, kind: pack.kind, size: pack.size, entries: pack.entries }], { pending: true })
  }

  /** Starts writing a pack of `kind` to the remote: its bytes stream to `object`; `savePack` commits it. */
  newPackWriter(kind: PackKind): { writer: PackWriter; object: ObjectWriter } {
    const object = createObjectWriter(this.remote, `${kind}/`)
    return { writer: new PackWriter(kind, this.config.pack_size_bytes, object), object }
  }

  /** Location of a blob, or undefined. */
  lookup(id: string): BlobLocation | undefined {
    return this.cache.getBlob(id)
  }

  /** Loads one blob's plaintext, checking authentication and its id. Throws NotFoundError or IntegrityError. */
  async loadBlob(id: string): Promise<Buffer> {
    const before = this.cache.getBlob(id)
    try {
      return await this.loadBlobAt(id, before)
    } catch (err) {
      if (!isNotFound(err)) throw err
      // A long-lived reader (the WebDAV view, the daemon) may hold an index older than a prune's: a repack
      // moved the blob and a sweep deleted the old pack, or another host indexed it since. Sync once (shared,
      // at most every few seconds) and read again if the index now says something else.
      await this.resyncAfterMiss()
      const after = this.cache.getBlob(id)
      if (!after || (before && after.packId === before.packId && after.offset === before.offset)) throw err
      return await this.loadBlobAt(id, after)
    }
  }

  private async loadBlobAt(id: string, loc: BlobLocation | undefined): Promise<Buffer> {
    if (!loc) throw new NotFoundError(`blob ${id}`, `blob ${id} is not in the index (run 'coldstore repair index' if packs were added elsewhere)`)
    const sealed = await this.remote.get(packObjectName(packKindOf(loc.type), loc.packId), { offset: loc.offset, length: loc.length })
    return this.decodeAndCheck(sealed, id, loc)
  }

  private missSync: Promise<void> | null = null
  private missSyncedAt = -Infinity

  /** syncIndex for a read that missed: concurrent misses share one; none again within 5 s of the last. */
  private async resyncAfterMiss(): Promise<void> {
    if (this.missSync) return this.missSync
    if (Date.now() - this.missSyncedAt < 5000) return
    this.missSync = (async () => {
      try {
        await this.syncIndex()
      } catch {
        // A damaged or unreadable index object: the miss itself is what the caller reports.
      } finally {
        this.missSyncedAt = Date.now()
        this.missSync = null
      }
    })()
    return this.missSync
  }

  /** Opens, decompresses and id-checks a blob read from `loc`. */
  decodeAndCheck(sealed: Uint8Array, id: string, loc: BlobLocation): Buffer {
    if (sealed.length !== loc.length) throw new IntegrityError(`blob ${id} in pack ${loc.packId}: short read (${sealed.length} of ${loc.length} bytes)`, { blobId: id, packId: loc.packId })
    let plain: Buffer
    try {
      plain = decodeBlob(sealed, { ...loc, id }, this.sealer)
    } catch (err) {
      if (err instanceof IntegrityError) throw new IntegrityError(`blob ${id} in pack ${loc.packId} is damaged`, { blobId: id, packId: loc.packId }, { cause: err })
      throw err
    }
    if (this.ids.idHex(plain) !== id) throw new IntegrityError(`blob ${id} in pack ${loc.packId}: content does not match its id`, { blobId: id, packId: loc.packId })
    return plain
  }

  /** Reads a pack's header from the remote. */
  async readPackHeader(kind: PackKind, packId: string, size?: number): Promise<PackEntry[]> {
    const name = packObjectName(kind, packId)
    const total = size ?? (await this.remote.stat(name)).size
    const want = Math.min(total, 64 * 1024)
    let tail = await this.remote.get(name, { offset: total - want, length: want })
    const hlen = tail.length >= 4 ? tail.readUInt32LE(tail.length - 4) : 0
    if (hlen + 4 > tail.length && hlen + 4 <= total) tail = await this.remote.get(name, { offset: total - hlen - 4, length: hlen + 4 })
    return decodeTrailer(tail, total, this.sealer, packId)
  }

  /** Seals and stores a JSON document under `dir/<BLAKE3 of stored bytes>`; returns the id. */
  async putJsonObject(dir: string, value: unknown): Promise<string> {
    const bytes = this.sealer.seal(Buffer.from(JSON.stringify(value)))
    const id = hashHex(bytes)
    await this.remote.put(`${dir}/${id}`, bytes)
    return id
  }

  /**
   * Loads a sealed JSON document stored by `putJsonObject`, checking its name. With `cached`, the sealed
   * bytes are kept in the local cache (`<cache>/objects/<dir>/<id>`, still sealed) and read from there next
   * time: the objects never change, and the name check runs on cached bytes too, so a damaged cache file is
   * refetched rather than trusted.
   */
  async getJsonObject<T>(dir: string, id: string, o: { cached?: boolean } = {}): Promise<T> {
    const name = `${dir}/${id}`
    let bytes: Buffer | null = null
    const file = o.cached ? `${this.cachePath}/objects/${dir}/${id}` : null
    if (file) {
      bytes = await readFile(file).catch(() => null)
      if (bytes && hashHex(bytes) !== id) bytes = null
    }
    if (!bytes) {
      bytes = await this.remote.get(name)
      if (hashHex(bytes) !== id) throw new IntegrityError(`${name}: content does not match its name (damaged)`)
      if (file) await writeCacheFile(file, bytes)
    }
    const plain = this.sealer.open(bytes, name)
    try {
      return JSON.parse(plain.toString('utf8')) as T
    } catch (err) {
      throw new IntegrityError(`${name}: not valid JSON`, {}, { cause: err })
    }
  }

  async close(): Promise<void> {
    await this.cache.close()
  }
}

/** Tries every key file until one opens with `password`. */
async function unlock(remote: Remote, password: string): Promise<Buffer> {
  const names: string[] = []
  for await (const o of remote.list('keys/')) names.push(o.name)
  if (names.length === 0) throw new KeyError('the repository has no key files (keys/ is empty): it cannot be opened')
  const damaged: string[] = []
  for (const name of names.sort()) {
    const bytes = await remote.get(name)
    if (hashHex(bytes) !== name.slice('keys/'.length)) {
      damaged.push(name)
      continue
    }
    let k
    try {
      k = parseKeyFile(bytes, name)
    } catch {
      damaged.push(name)
      continue
    }
    const master = await unwrapMasterKey(k, password)
    if (master) return master
  }
  if (damaged.length === names.length) throw new KeyError(`every key file is damaged (${damaged.join(', ')}): the repository cannot be opened`)
  if (damaged.length > 0) throw new PasswordError(`wrong password, or the key it opens is damaged (${damaged.join(', ')} failed its checksum)`)
  throw new PasswordError()
}

/** Runs `fn` over `items` with at most `limit` running at once. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  const runners: Promise<void>[] = []
  for (let w = 0; w < Math.max(1, Math.min(limit, items.length)); w++) {
    runners.push((async () => {
      while (next < items.length) {
        const i = next++
        await fn(items[i], i)
      }
    })())
  }
  await Promise.all(runners)
}

/** Writes a cache file via a temporary name, so a concurrent reader never sees half of it. Never throws: a cache that cannot be written is only slower. */
async function writeCacheFile(file: string, bytes: Buffer): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await mkdir(dirname(file), { recursive: true })
    await writeFile(temp, bytes)
    await rename(temp, file)
  } catch {
    await rm(temp, { force: true }).catch(() => undefined)
  }
}
