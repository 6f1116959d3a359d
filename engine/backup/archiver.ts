import { constants as fsc, type BigIntStats } from 'node:fs'
import { close as closeCb, fstat as fstatCb, open as openCb, read as readCb } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { promisify } from 'node:util'
import { availableParallelism } from 'node:os'
import { basename, resolve } from 'node:path'
import { Chunker } from '../chunker/index.js'
import { IntegrityError, InterruptedError, SourceError, UsageError } from '../errors.js'
import { beginWrite, checkSnapshotStored, reindexReusedPacks } from '../gc/index.js'
import { StreamHasher } from '../hash/index.js'
import type { Repository } from '../repo/index.js'
import type { FileCacheEntry } from '../index/index.js'
import { saveSnapshot, type SnapshotDoc, type SnapshotStats } from '../snapshot/index.js'
import { encodeTree, type NodeType, type TreeNode } from '../tree/index.js'
import { ExcludeMatcher, GitignoreScope } from '../filter/index.js'
import { Packer } from './packer.js'
import { SmallFileBatcher } from './small-files.js'
import { BlobWorkerPool } from './worker-pool.js'

/** How a stored file compares with what the file cache knew: for the snapshot's counts. */
type FileKind = 'new' | 'changed' | 'unchanged'

/** Something the backup could not read fully; the snapshot is still written. */
export interface BackupWarning {
  path: string
  kind: 'unreadable' | 'changed' | 'vanished'
  message: string
}

/** Progress of a running backup. Totals are filled in once the scan finished. */
export interface BackupProgress {
  files: number
  dirs: number
  bytes: number
  totalFiles: number | null
  totalBytes: number | null
  current: string
}

export interface BackupOptions {
  /** Source paths (made absolute). */
  paths: readonly string[]
  job?: string | null
  tags?: readonly string[]
  kind?: 'snapshot' | 'freeze'
  meta?: Record<string, unknown>
  hostname: string
  username: string
  now: () => Date
  excludes?: readonly string[]
  /** Respect .gitignore files. */
  gitignore?: boolean
  dryRun?: boolean
  program: string
  /** Write an index object every this many uploaded packs (default 64), not only at the end. */
  indexEveryPacks?: number
  /** Worker threads for hashing/compression (default: number of cores). */
  workers?: number
  onProgress?: (p: BackupProgress) => void
  /** Least time between two progress reports (default 100 ms; 0 reports every step). */
  progressIntervalMs?: number
  onWarning?: (w: BackupWarning) => void
  /**
   * Stops the backup at the next file or read buffer once aborted: what was read so far is packed,
   * uploaded and indexed (so the next run reuses it), no snapshot is written, and `backup` rejects with an
   * InterruptedError. Files being read finish their current read buffer first.
   */
  signal?: AbortSignal
  /**
   * Stay on each source's file system: a directory on another file system (a mount point) is stored as
   * an empty directory and not entered, like restic's and tar's `--one-file-system`.
   */
  oneFileSystem?: boolean
  /** Called for every regular file the snapshot holds (stored now or unchanged), with its absolute path and node. */
  onFile?: (abs: Buffer, node: TreeNode) => void
  /**
   * Called once the sources are stored, before the root tree is written (freezes): top-level folders of
   * generated files to add to the snapshot, and the `meta` to store (replaces `meta` when given).
   */
  beforeRoot?: () => Promise<{ folders?: readonly GeneratedFolder[]; meta?: Record<string, unknown> }>
}

/** A top-level folder of generated files (a freeze's SETUP.md and reports), stored like source files. */
export interface GeneratedFolder {
  name: string
  /** Modification time of the folder and its files (fixed, so a dry run predicts the real run's trees). */
  mtimeNs: bigint
  files: readonly { name: string; content: Buffer }[]
}

export interface BackupResult {
  /** Snapshot id; null for a dry run. */
  id: string | null
  snapshot: SnapshotDoc
  warnings: BackupWarning[]
  dryRun: boolean
  /**
   * Packs a run before this one renamed into place but did not live to record, found and reused by this
   * run (it looks for them when the cache shows that the run before it did not finish).
   */
  adopted: { packs: number; bytes: number }
}

const READ_BYTES = 1024 * 1024

// Plain file descriptors: the promise API's FileHandle costs more than the read itself for small files.
const openFd = promisify(openCb)
const closeFd = promisify(closeCb)
const readFd = (fd: number, buf: Buffer, length: number): Promise<number> =>
  new Promise((res, rej) => readCb(fd, buf, 0, length, null, (err, n) => (err ? rej(err) : res(n))))
const fstatFd = (fd: number): Promise<BigIntStats> =>
  new Promise((res, rej) => fstatCb(fd, { bigint: true }, (err, st) => (err ? rej(err) : res(st))))
const FILE_CONCURRENCY = 4
/** Subdirectories walked in parallel (beyond this, one at a time): bounds memory and open directories. */
const DIR_CONCURRENCY = 8
const FILE_WINDOW = 256
const SLASH = Buffer.from('/')

/** A simple counting semaphore. */
class Semaphore {
  private n: number
  private readonly waiters: (() => void)[] = []
  constructor(n: number) {
    this.n = n
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.n === 0) await new Promise<void>((r) => this.waiters.push(r))
    this.n--
    try {
      return await fn()
    } finally {
      this.n++
      this.waiters.shift()?.()
    }
  }
}

const STAT_AHEAD = 64

/**
 * lstat()s the entries of a directory, up to STAT_AHEAD at once, yielding
 * them in order: one at a time, each stat would wait a full round trip
 * through libuv's thread pool.
 */
async function* statEntries(dir: Buffer, names: readonly Buffer[]): AsyncGenerator<{ name: Buffer; abs: Buffer; st: BigIntStats | null; err: unknown }> {
  const start = (name: Buffer): Promise<{ name: Buffer; abs: Buffer; st: BigIntStats | null; err: unknown }> => {
    const abs = Buffer.concat([dir, SLASH, name])
    return lstat(abs, { bigint: true }).then((st) => ({ name, abs, st, err: null }), (err: unknown) => ({ name, abs, st: null, err }))
  }
  const ahead: Promise<{ name: Buffer; abs: Buffer; st: BigIntStats | null; err: unknown }>[] = []
  let next = 0
  while (next < names.length && ahead.length < STAT_AHEAD) ahead.push(start(names[next++]))
  while (ahead.length) {
    const r = await ahead.shift()!
    if (next < names.length) ahead.push(start(names[next++]))
    yield r
  }
}

function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isSocket()) return 'socket'
  if (st.isCharacterDevice()) return 'chardev'
  return 'blockdev'
}

function baseNode(name: Buffer, st: BigIntStats): TreeNode {
  return {
    name,
    type: nodeType(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeNs: st.mtimeNs,
  }
}

/**
 * Takes a snapshot of `paths`: walks them, stores what is new, writes the
 * index and then the snapshot object. Unreadable entries become warnings.
 */
export async function backup(repo: Repository, o: BackupOptions): Promise<BackupResult> {
  const started = Date.now()
  if (o.paths.length === 0) throw new UsageError('nothing to snapshot: give at least one path')
  const sources: { abs: string; name: Buffer; st: BigIntStats }[] = []
  for (const p of o.paths) {
    const abs = resolve(p)
    let st: BigIntStats
    try {
      st = await lstat(abs, { bigint: true })
    } catch (err) {
      throw new SourceError(`cannot read source ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`, { cause: err })
    }
    const name = Buffer.from(abs === '/' ? 'ROOT' : basename(abs))
    if (sources.some((s) => s.name.equals(name))) throw new UsageError(`two sources are named ${name.toString()}: snapshot them separately`)
    sources.push({ abs, name, st })
  }
  const matcher = new ExcludeMatcher(o.excludes ?? [], o.gitignore ?? false)
  // A lock and the prune plans first (engine/gc): nothing a prune is about to delete is reused.
  const guard = await beginWrite(repo, { operation: o.kind ?? 'snapshot', host: o.hostname, username: o.username, program: o.program, dryRun: o.dryRun })
  try {
    // A run that died with this cache may have renamed packs into place without recording them (the window
    // between a pack's rename and its record): take them up before storing anything, or they are stored again.
    // After beginWrite: packs a prune plans to delete are not taken up.
    let run: string | null = null
    let adopted = { packs: 0, bytes: 0 }
    if (!o.dryRun) {
      const unfinished = repo.cache.unfinishedRuns()
      run = repo.cache.beginRun(new Date(started).toISOString())
      if (unfinished.length > 0) {
        adopted = await repo.adoptUnindexedPacks()
        for (const token of unfinished) repo.cache.endRun(token)
      }
    }
    const a = new Archiver(repo, o, matcher)
    let r: BackupResult
    try {
      r = await a.run(sources, started)
    } finally {
      await a.close()
    }
    // A prune that marked while this ran may have repacked packs it reused: index them again (rare; else one listing).
    if (r.id && !o.dryRun) await reindexReusedPacks(repo, r.snapshot.tree, guard.plansSeen)
    if (guard.lapsed && r.id) {
      // The lock went stale mid-run (suspended?): a prune may have deleted what this snapshot reuses.
      try {
        await checkSnapshotStored(repo, r.snapshot.tree)
      } catch (err) {
        await repo.remote.delete(`snapshots/${r.id}`)
        throw new IntegrityError(`the snapshot was not kept: this run was suspended long enough for a prune to delete data it reused (${(err as Error).message}); run it again`, {}, { cause: err })
      }
    }
    if (run) repo.cache.endRun(run)
    return { ...r, adopted }
  } finally {
    await guard.end()
  }
}

class Archiver {
  private readonly repo: Repository
  private readonly o: BackupOptions
  private readonly matcher: ExcludeMatcher
  private readonly pool: BlobWorkerPool
  private readonly packer: Packer
  private readonly fileSem = new Semaphore(FILE_CONCURRENCY)
  private dirsRunning = 0
  /** Read buffers of finished files, reused (at most one per concurrent file). */
  private readonly readBuffers: Buffer[] = []
  /**
   * Files with several links seen in this run, by device and inode: later paths of an inode take the first
   * path's result instead of reading it again (a hard-link farm is read once), and its classification
   * (new, changed, unchanged), so the counts do not depend on whether the first path's file-cache entry
   * was written yet (a dry run writes none: a freeze's prediction must equal the real run).
   */
  private readonly linkResults = new Map<string, { result: Promise<{ node: TreeNode; st: BigIntStats; kind: FileKind } | null>; pending: number }>()
  /** The classification of each file node stored in this run (see `linkResults`). */
  private readonly kindOf = new WeakMap<TreeNode, FileKind>()
  /** File-change cache entries waiting to be written in one transaction. */
  private readonly fileCacheBatch: { dev: bigint; ino: bigint; entry: FileCacheEntry }[] = []
  private readonly small: SmallFileBatcher
  private readonly dryRun: boolean
  private readonly level: number
  private readonly warnings: BackupWarning[] = []
  private readonly stats: SnapshotStats = {
    files: 0, dirs: 0, bytes: 0, new_files: 0, changed_files: 0, unchanged_files: 0, new_chunks: 0, added_bytes: 0,
    added_data_bytes: 0, added_meta_bytes: 0, duration_s: 0,
  }
  private readonly progress: BackupProgress = { files: 0, dirs: 0, bytes: 0, totalFiles: null, totalBytes: null, current: '' }
  private lastProgress = 0
  /** Device of the source being stored (sources are stored one after the other), for oneFileSystem. */
  private sourceDev = 0n

  constructor(repo: Repository, o: BackupOptions, matcher: ExcludeMatcher) {
    this.repo = repo
    this.o = o
    this.matcher = matcher
    this.dryRun = o.dryRun ?? false
    this.level = repo.config.compression.level
    const workers = o.workers ?? availableParallelism()
    this.pool = new BlobWorkerPool({
      workers,
      // One chunk being formed per file read at once, plus enough in flight to keep every worker busy.
      slotCount: FILE_CONCURRENCY + workers * 2,
      slotBytes: repo.chunkerParams.maxBytes + 1024,
      encKey: repo.keys?.encKey ?? null,
      idKey: repo.keys?.idKey ?? null,
      presence: () => repo.cache.storedIds(),
    })
    this.packer = new Packer(repo, { dryRun: this.dryRun, indexEveryPacks: o.indexEveryPacks })
    this.small = new SmallFileBatcher({ pool: this.pool, packer: this.packer, level: this.level, limitBytes: repo.chunkerParams.minBytes })
  }

  async close(): Promise<void> {
    await this.packer.settle()
    await this.pool.close()
  }

  private warn(w: BackupWarning): void {
    this.warnings.push(w)
    this.o.onWarning?.(w)
  }

  private tick(current: string, force = false): void {
    this.progress.current = current
    const now = Date.now()
    if (!force && now - this.lastProgress < (this.o.progressIntervalMs ?? 100)) return
    this.lastProgress = now
    this.o.onProgress?.({ ...this.progress })
  }

  async run(sources: { abs: string; name: Buffer; st: BigIntStats }[], started: number): Promise<BackupResult> {
    // Totals only matter to someone watching progress; the scan costs a second lstat of everything.
    if (this.o.onProgress) void this.scan(sources)
    const indexBytesBefore = this.repo.indexBytesWritten
    const rootNodes: TreeNode[] = []
    for (const s of sources) {
      this.sourceDev = s.st.dev
      const node = await this.saveEntry(s.abs, s.name, '', s.st, GitignoreScope.root())
      if (node) rootNodes.push(node)
    }
    if (this.aborted) {
      // A checkpoint: pack and upload what was read, index it, write no snapshot.
      await this.packer.flush()
      if (!this.dryRun) await this.repo.indexPendingPacks()
      await this.repo.cache.flush()
      throw new InterruptedError(`backup interrupted after ${this.stats.files} files (${this.packer.blobs} new blobs stored and indexed; the next run reuses them)`)
    }
    let meta = this.o.meta
    if (this.o.beforeRoot) {
      const extra = await this.o.beforeRoot()
      if (extra.meta) meta = extra.meta
      for (const f of extra.folders ?? []) {
        if (rootNodes.some((n) => n.name.toString() === f.name)) throw new UsageError(`a source is named ${f.name}, the name of the generated folder: rename it or snapshot it separately`)
        rootNodes.push(await this.saveGenerated(f, sources[0]?.st))
      }
    }
    const rootId = await this.packer.addPlain('tree', encodeTree(rootNodes))
    this.flushFileCache()
    await this.packer.flush()
    let indexBytes = 0
    if (!this.dryRun) {
      await this.repo.indexPendingPacks()
      indexBytes = this.repo.indexBytesWritten - indexBytesBefore
    }
    this.stats.new_chunks = this.packer.blobs
    this.stats.added_bytes = this.packer.packBytes + indexBytes
    this.stats.added_data_bytes = this.packer.packBytesByKind.data
    this.stats.added_meta_bytes = this.packer.packBytesByKind.meta
    this.stats.new_raw_bytes = this.packer.rawBytesByKind.data + this.packer.rawBytesByKind.meta
    this.stats.new_stored_bytes = this.packer.storedBytesByKind.data + this.packer.storedBytesByKind.meta
    this.stats.duration_s = Math.round((Date.now() - started) / 10) / 100
    this.tick('', true)
    const doc: SnapshotDoc = {
      version: 1,
      kind: this.o.kind ?? 'snapshot',
      time: this.o.now().toISOString(),
      host: this.o.hostname,
      username: this.o.username,
      paths: sources.map((s) => s.abs),
      tree: rootId,
      job: this.o.job ?? null,
      tags: [...(this.o.tags ?? [])],
      parent: null,
      stats: this.stats,
      program: this.o.program,
      ...(meta ? { meta } : {}),
    }
    const id = this.dryRun ? null : await saveSnapshot(this.repo, doc)
    await this.repo.cache.flush()
    return { id, snapshot: doc, warnings: this.warnings, dryRun: this.dryRun, adopted: { packs: 0, bytes: 0 } }
  }

  private get aborted(): boolean {
    return this.o.signal?.aborted === true
  }

  /** True for a directory that oneFileSystem keeps out: on another file system than its source. */
  private otherFileSystem(st: BigIntStats, sourceDev: bigint): boolean {
    return this.o.oneFileSystem === true && st.dev !== sourceDev
  }

  /** Counts files and bytes ahead of the backup so progress can show totals and an ETA. */
  private async scan(sources: { abs: string; name: Buffer; st: BigIntStats }[]): Promise<void> {
    let files = 0
    let bytes = 0
    let dev = 0n
    const walk = async (abs: Buffer, rel: string, st: BigIntStats, scope: GitignoreScope): Promise<void> => {
      if (this.aborted) return
      if (st.isFile()) {
        files++
        bytes += Number(st.size)
        return
      }
      if (!st.isDirectory() || this.otherFileSystem(st, dev)) return
      const inner = this.matcher.gitignore ? await scope.child(abs.toString(), rel) : scope
      let names: Buffer[]
      try {
        names = await readdir(abs, { encoding: 'buffer' })
      } catch {
        return
      }
      for await (const { name: n, abs: childAbs, st: cst } of statEntries(abs, names)) {
        const childRel = rel ? `${rel}/${n.toString()}` : n.toString()
        if (!cst) continue
        if (this.excluded(childRel, n.toString(), cst.isDirectory(), inner)) continue
        await walk(childAbs, childRel, cst, inner)
      }
    }
    try {
      for (const s of sources) {
        dev = s.st.dev
        await walk(Buffer.from(s.abs), s.name.toString(), s.st, GitignoreScope.root())
      }
      this.progress.totalFiles = files
      this.progress.totalBytes = bytes
    } catch {
      // progress totals are best effort
    }
  }

  private excluded(rel: string, name: string, isDir: boolean, scope: GitignoreScope): boolean {
    // `rel` starts with the source's own name (as stored); path patterns may be written with it or without.
    if (this.matcher.matches(rel, name, rel.slice(rel.indexOf('/') + 1))) return true
    return this.matcher.gitignore && scope.ignores(rel, isDir)
  }

  /** Stores one entry (recursing into directories); returns its node or null when it cannot be read. */
  private async saveEntry(abs: string | Buffer, name: Buffer, rel: string, st: BigIntStats, scope: GitignoreScope): Promise<TreeNode | null> {
    if (this.aborted) return null
    const absB = typeof abs === 'string' ? Buffer.from(abs) : abs
    const node = baseNode(name, st)
    const relPath = rel ? `${rel}/${name.toString()}` : name.toString()
    switch (node.type) {
      case 'dir':
        if (this.otherFileSystem(st, this.sourceDev)) {
          // A mount point: kept as an empty folder, so a restore recreates the place to mount it.
          this.stats.dirs++
          this.progress.dirs++
          node.subtree = await this.packer.addPlain('tree', encodeTree([]))
          return node
        }
        return this.saveDir(absB, node, relPath, scope)
      case 'file':
        // Small files are batched to the workers and need no read buffer: only large ones take a reader slot.
        if (st.size < BigInt(this.repo.chunkerParams.minBytes)) return this.saveFile(absB, node, relPath, st)
        return this.fileSem.run(() => this.saveFile(absB, node, relPath, st))
      case 'symlink':
        try {
          node.target = await readlink(absB, { encoding: 'buffer' })
        } catch (err) {
          this.warn({ path: relPath, kind: 'unreadable', message: `cannot read symlink: ${(err as Error).message}` })
          return null
        }
        return node
      case 'chardev':
      case 'blockdev':
        node.rdev = Number(st.rdev)
        return node
      default:
        return node // FIFOs and sockets: recorded, never read
    }
  }

  private async saveDir(abs: Buffer, node: TreeNode, rel: string, scope: GitignoreScope): Promise<TreeNode | null> {
    let names: Buffer[]
    try {
      names = await readdir(abs, { encoding: 'buffer' })
    } catch (err) {
      this.warn({ path: rel, kind: 'unreadable', message: `cannot list directory: ${(err as Error).message}` })
      return null
    }
    this.stats.dirs++
    this.progress.dirs++
    const inner = this.matcher.gitignore ? await scope.child(abs.toString(), rel) : scope
    names.sort(Buffer.compare)
    const children: Promise<TreeNode | null>[] = []
    let settledUpTo = 0
    for await (const { name: n, abs: childAbs, st, err } of statEntries(abs, names)) {
      const childRel = `${rel}/${n.toString()}`
      if (!st) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          this.warn({ path: childRel, kind: 'vanished', message: 'disappeared before it could be read' })
        } else {
          this.warn({ path: childRel, kind: 'unreadable', message: (err as Error).message })
        }
        continue
      }
      if (this.excluded(childRel, n.toString(), st.isDirectory(), inner)) continue
      if (st.isDirectory()) {
        if (this.dirsRunning < DIR_CONCURRENCY) {
          // In parallel while few are running (small directories alone give too little to overlap)...
          this.dirsRunning++
          const p = this.saveEntry(childAbs, n, rel, st, inner).finally(() => this.dirsRunning--)
          p.catch(() => {})
          children.push(p)
        } else {
          // ...otherwise depth first, one at a time, which bounds memory.
          children.push(Promise.resolve(await this.saveEntry(childAbs, n, rel, st, inner)))
        }
      } else {
        const p = this.saveEntry(childAbs, n, rel, st, inner)
        p.catch(() => {}) // awaited below; this only keeps an early rejection from being unhandled
        children.push(p)
        // A window of files in flight, so a directory of a million files does not hold a million promises.
        if (children.length - settledUpTo > FILE_WINDOW) await children[settledUpTo++]
      }
    }
    const nodes = (await Promise.all(children)).filter((c): c is TreeNode => c !== null)
    node.subtree = await this.packer.addPlain('tree', encodeTree(nodes))
    this.tick(rel)
    return node
  }

  private async saveFile(abs: Buffer, node: TreeNode, rel: string, st: BigIntStats): Promise<TreeNode | null> {
    if (this.aborted) return null // (queued for a reader slot before the stop)
    if (st.blocks * 512n < st.size) node.sparse = true
    if (st.nlink <= 1n) return this.saveFileOnce(abs, node, rel, st)
    node.links = Number(st.nlink)
    node.inode = st.ino.toString()
    node.dev = st.dev.toString()
    const key = `${st.dev}:${st.ino}`
    const first = this.linkResults.get(key)
    if (first === undefined) {
      const result = this.saveFileOnce(abs, node, rel, st).then((n) => (n ? { node: n, st, kind: this.kindOf.get(n) ?? 'new' } : null))
      this.linkResults.set(key, { result, pending: Number(st.nlink) - 1 })
      return (await result)?.node ?? null
    }
    if (--first.pending <= 0) this.linkResults.delete(key) // every link seen (links outside the source stay to the end)
    const r = await first.result
    if (this.aborted) return null
    // The same inode, unchanged since its first path was stored: the same content.
    if (!r || r.st.size !== st.size || r.st.mtimeNs !== st.mtimeNs || r.st.ctimeNs !== st.ctimeNs || r.node.size === undefined) {
      return this.saveFileOnce(abs, node, rel, st)
    }
    this.progress.files++
    node.size = r.node.size
    node.chunks = r.node.chunks
    node.blake3 = r.node.blake3
    this.kindOf.set(node, r.kind)
    this.countFile(r.kind, r.node.size)
    this.progress.bytes += r.node.size
    this.o.onFile?.(abs, node)
    this.tick(rel)
    return node
  }

  private countFile(kind: FileKind, size: number): void {
    this.stats.files++
    this.stats.bytes += size
    if (kind === 'unchanged') this.stats.unchanged_files++
    else if (kind === 'changed') this.stats.changed_files++
    else this.stats.new_files++
  }

  private async saveFileOnce(abs: Buffer, node: TreeNode, rel: string, st: BigIntStats): Promise<TreeNode | null> {
    this.progress.files++
    const cached = this.repo.cache.getFile(st.dev, st.ino)
    if (
      cached && cached.size === st.size && cached.mtimeNs === st.mtimeNs && cached.ctimeNs === st.ctimeNs &&
      cached.chunks.every((c) => this.packer.known(c))
    ) {
      node.size = Number(st.size)
      node.chunks = cached.chunks
      node.blake3 = cached.blake3
      this.kindOf.set(node, 'unchanged')
      this.countFile('unchanged', node.size)
      this.progress.bytes += Number(st.size)
      this.o.onFile?.(abs, node)
      this.tick(rel)
      return node
    }
    if (st.size < BigInt(this.repo.chunkerParams.minBytes)) {
      const r = await this.small.add(abs, Number(st.size), st.mtimeNs)
      if (r.ok) this.progress.bytes += r.size // (files read here count their bytes as they go)
      if (r.ok) return this.fileStored(abs, node, rel, st, cached !== undefined, { size: r.size, chunks: [r.id], blake3: r.blake3 }, r.changed, BigInt(r.afterSize))
      if (r.code !== 'EGREW') {
        this.warn({ path: rel, kind: r.code === 'ENOENT' ? 'vanished' : 'unreadable', message: r.message })
        return null
      }
      // It grew past the chunker's minimum while we looked: read it the normal way below.
    }
    let fd: number
    try {
      fd = await openFd(abs, fsc.O_RDONLY | (fsc.O_NOATIME ?? 0))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EPERM') {
        try {
          fd = await openFd(abs, fsc.O_RDONLY) // O_NOATIME needs ownership
        } catch (err2) {
          this.warn({ path: rel, kind: 'unreadable', message: (err2 as Error).message })
          return null
        }
      } else {
        this.warn({ path: rel, kind: code === 'ENOENT' ? 'vanished' : 'unreadable', message: (err as Error).message })
        return null
      }
    }
    try {
      const r = await this.readFile(fd, rel)
      if (this.aborted) return null // cut short: the file is not part of any snapshot
      const after = await fstatFd(fd)
      const changed = after.size !== st.size || after.mtimeNs !== st.mtimeNs || BigInt(r.size) !== st.size
      return this.fileStored(abs, node, rel, st, cached !== undefined, r, changed, after.size)
    } catch (err) {
      this.warn({ path: rel, kind: 'unreadable', message: `read failed: ${(err as Error).message}` })
      return null
    } finally {
      await closeFd(fd)
    }
  }

  /** Records a stored file: its node, the change cache (unless it changed while read), stats. */
  private fileStored(
    abs: Buffer, node: TreeNode, rel: string, st: BigIntStats, wasCached: boolean,
    r: { size: number; chunks: string[]; blake3: string }, changed: boolean, afterSize: bigint,
  ): TreeNode {
    node.size = r.size
    node.chunks = r.chunks
    node.blake3 = r.blake3
    if (changed) {
      this.warn({ path: rel, kind: 'changed', message: `changed while being read (size ${st.size} → ${afterSize}; stored ${r.size} bytes as read)` })
    } else if (!this.dryRun) {
      this.fileCacheBatch.push({ dev: st.dev, ino: st.ino, entry: { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, blake3: r.blake3, chunks: r.chunks } })
      if (this.fileCacheBatch.length >= 1024) this.flushFileCache()
    }
    const kind: FileKind = wasCached ? 'changed' : 'new'
    this.kindOf.set(node, kind)
    this.countFile(kind, r.size)
    this.o.onFile?.(abs, node)
    this.tick(rel)
    return node
  }

  /** Stores a generated folder: its files cut by the chunker like source files, on this thread. */
  private async saveGenerated(f: GeneratedFolder, owner: BigIntStats | undefined): Promise<TreeNode> {
    const uid = Number(owner?.uid ?? 0n)
    const gid = Number(owner?.gid ?? 0n)
    const nodes: TreeNode[] = []
    for (const file of f.files) {
      const chunker = new Chunker(this.repo.chunkerParams, this.repo.gear)
      const chunks: string[] = []
      let stored = true // every chunk already stored: counted as unchanged, like a source file found in the cache
      const add = async (piece: Buffer): Promise<void> => {
        if (!this.packer.known(this.repo.ids.idHex(piece))) stored = false
        chunks.push(await this.packer.addPlain('data', piece))
      }
      let start = 0
      for (const cut of chunker.push(file.content)) {
        await add(file.content.subarray(start, cut))
        start = cut
      }
      if (start < file.content.length) await add(file.content.subarray(start))
      const hasher = new StreamHasher()
      hasher.update(file.content)
      nodes.push({ name: Buffer.from(file.name), type: 'file', mode: 0o644, uid, gid, mtimeNs: f.mtimeNs, size: file.content.length, chunks, blake3: hasher.digestHex() })
      this.stats.files++
      if (stored && file.content.length > 0) this.stats.unchanged_files++
      else this.stats.new_files++
      this.stats.bytes += file.content.length
    }
    nodes.sort((a, b) => Buffer.compare(a.name, b.name))
    this.stats.dirs++
    const subtree = await this.packer.addPlain('tree', encodeTree(nodes))
    return { name: Buffer.from(f.name), type: 'dir', mode: 0o755, uid, gid, mtimeNs: f.mtimeNs, subtree }
  }

  /** Writes remembered files to the file-change cache in one transaction. */
  private flushFileCache(): void {
    if (this.fileCacheBatch.length === 0) return
    this.repo.cache.putFiles(this.fileCacheBatch.splice(0))
  }

  /**
   * Reads, chunks and stores one file's content. Bytes go from a reused read
   * buffer straight into the worker slot of the chunk being formed: each byte
   * is copied once and nothing is allocated per chunk.
   */
  private async readFile(fd: number, rel: string): Promise<{ size: number; chunks: string[]; blake3: string }> {
    const chunker = new Chunker(this.repo.chunkerParams, this.repo.gear)
    const hasher = new StreamHasher()
    const ids: Promise<string>[] = []
    const readBuf = this.readBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES)
    let slot = -1
    let fill = 0
    let size = 0
    try {
      for (;;) {
        const bytesRead = await readFd(fd, readBuf, READ_BYTES)
        if (bytesRead === 0) break
        const view = readBuf.subarray(0, bytesRead)
        hasher.update(view)
        size += bytesRead
        this.progress.bytes += bytesRead
        let start = 0
        for (const cut of chunker.push(view)) {
          if (slot < 0) slot = await this.pool.acquire() // backpressure: waits while every slot is in flight
          view.copy(this.pool.slotView(slot), fill, start, cut)
          ids.push(handled(this.storeChunk(slot, fill + cut - start)))
          slot = -1
          fill = 0
          start = cut
        }
        if (start < bytesRead) {
          if (slot < 0) slot = await this.pool.acquire()
          view.copy(this.pool.slotView(slot), fill, start, bytesRead)
          fill += bytesRead - start
        }
        this.tick(rel)
        if (bytesRead < READ_BYTES) break // a short read of a regular file is its end: save a read
        if (this.aborted) break
      }
      if (fill > 0) {
        ids.push(handled(this.storeChunk(slot, fill)))
        slot = -1
      }
    } finally {
      if (slot >= 0) this.pool.release(slot)
      this.readBuffers.push(readBuf)
    }
    const chunks = await Promise.all(ids)
    return { size, chunks, blake3: hasher.digestHex() }
  }

  /** Names the chunk in `slot` and stores it unless it is known; releases the slot. Resolves to its id. */
  private async storeChunk(slot: number, len: number): Promise<string> {
    try {
      const r = await this.pool.process(slot, len, { level: this.level, checkKnown: true })
      if (!r.known && !this.packer.known(r.id)) {
        await this.packer.add(r.id, 'data', { sealed: r.sealed, compression: r.compression, rawLength: r.rawLength })
      }
      return r.id
    } finally {
      this.pool.release(slot)
    }
  }
}

/**
 * `p`, with its rejection marked as handled: for promises collected now and awaited later (Promise.all after
 * a read loop). Without it, a chunk whose upload fails while the loop still awaits a read is an unhandled
 * rejection, which ends the process instead of failing the backup.
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined)
  return p
}
