import { execFile } from 'node:child_process'
import { close as fsClose, constants as fsc, ftruncate as fsFtruncate, open as fsOpen, write as fsWrite } from 'node:fs'
import { chmod, lchown, link, lstat, lutimes, mkdir, rm, symlink, utimes } from 'node:fs/promises'
import { promisify } from 'node:util'
import { availableParallelism } from 'node:os'
import { BlobWorkerPool } from '../backup/worker-pool.js'
import { ExistsError, IntegrityError, NotFoundError } from '../errors.js'
import { ExcludeMatcher } from '../filter/index.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, packKindOf, type Repository } from '../repo/index.js'
import type { Snapshot } from '../snapshot/index.js'
import { TreeReader, splitPath, type TreeNode } from '../tree/index.js'
import type { BlobLocation } from '../index/index.js'

const run = promisify(execFile)

export interface RestoreOptions {
  snapshot: Snapshot
  /** Path inside the snapshot to restore (bytes, '/'-separated); empty for everything. */
  path?: Buffer
  /** Directory to restore into (created if missing). */
  target: string
  /** Only entries matching one of these (and the directories leading to them). */
  include?: readonly string[]
  exclude?: readonly string[]
  /** Replace existing files; otherwise the restore refuses before writing anything. */
  overwrite?: boolean
  /** Restore owners (uid/gid): default when running as root. */
  owners?: boolean
  onProgress?: (p: { files: number; bytes: number; totalFiles: number; totalBytes: number; current: string }) => void
  /**
   * Worker threads that decrypt, decompress and check blobs. Default: one
   * fewer than the CPUs (at most 3) for restores of 16 MiB or more, none
   * below. 0 decodes on the main thread.
   */
  decodeWorkers?: number
  /** Entries restored per batch (default BATCH_ENTRIES); for tests. */
  batchEntries?: number
}

/** A file or entry that could not be restored. */
export interface RestoreError {
  path: string
  message: string
  blobId?: string
  packId?: string
}

export interface RestoreResult {
  files: number
  dirs: number
  bytes: number
  /** Other entries: symlinks, hard links, FIFOs, devices. */
  others: number
  errors: RestoreError[]
}

interface PlannedFile {
  dest: Buffer
  rel: string
  node: TreeNode
  remaining: number
  failed: RestoreError | null
  fd: number | null
  opening: Promise<number> | null
  /** Created on disk already (later opens must not use O_EXCL). */
  created: boolean
  /** Writes in flight: the file is not closed under them. */
  busy: number
}

/** One entry of the snapshot to restore, and where it goes. */
interface Entry {
  rel: string
  dest: Buffer
  node: TreeNode
}

interface Target {
  file: PlannedFile
  offset: number
}

/** Ranges closer than this are read together; bigger reads are split. */
const COALESCE_GAP = 256 * 1024
const MAX_READ = 4 * 1024 * 1024
const MAX_OPEN_FILES = 128
/** Files written (or metadata set) at once. */
const WRITE_CONCURRENCY = 32
/** Decoded bytes of one read (a compressed 8 MiB read could hold ~30 MiB of text): reads are split to stay under it. */
const MAX_PLAIN = 4 * 1024 * 1024
/** Pack reads in flight (each with up to MAX_READ + MAX_PLAIN bytes): enough to keep a disk or a network link busy. */
const PACKS_AT_ONCE = 4
/** Files (and other non-directory entries) planned and restored at a time: bounds memory (~1.5 KB each), while
 * keeping reads of small files coalesced (5,000 median-sized source files fill a few packs). */
const BATCH_ENTRIES = 5_000
/** Restores smaller than this decode on the main thread (starting workers costs more than it saves). */
const WORKER_MIN_BYTES = 16 * 1024 * 1024

// Plain file descriptors: the promise API's FileHandle costs more than a small file's write.
const openFd = promisify(fsOpen)
const closeFd = promisify(fsClose)
const ftruncateFd = promisify(fsFtruncate)
const writeFd = (fd: number, buf: Buffer, position: number): Promise<void> =>
  new Promise((res, rej) => {
    const go = (off: number): void =>
      fsWrite(fd, buf, off, buf.length - off, position + off, (err, n) => (err ? rej(err) : off + n < buf.length ? go(off + n) : res()))
    go(0)
  })

/** What selects the entries of a restore (RestoreOptions without how they are written). */
export type RestoreSelection = Pick<RestoreOptions, 'snapshot' | 'path' | 'include' | 'exclude' | 'target'>

/**
 * The entries a restore visits, streamed depth-first (a directory before what is in it), with where each
 * goes. Paths are bytes so names that are not UTF-8 survive. With include patterns, a directory is only
 * yielded once something below it is. A damaged or missing tree is reported to `onError` and loses what
 * is below it, not the whole walk.
 */
function entryWalker(trees: TreeReader, o: RestoreSelection): (onError: ((e: RestoreError) => void) | null) => AsyncGenerator<Entry> {
  const inc = o.include?.length ? new ExcludeMatcher(o.include, false) : null
  const exc = o.exclude?.length ? new ExcludeMatcher(o.exclude, false) : null
  const targetB = Buffer.from(o.target)
  const wanted = (rel: string, name: string): 'yes' | 'no' | 'maybe' => {
    if (exc?.matches(rel, name)) return 'no'
    if (!inc) return 'yes'
    return inc.matches(rel, name) ? 'yes' : 'maybe'
  }
  return async function* walkEntries(onError: ((e: RestoreError) => void) | null): AsyncGenerator<Entry> {
    const start = o.path && splitPath(o.path).length ? await trees.resolve(o.snapshot.tree, o.path) : null
    const pending: Entry[] = [] // 'maybe' directories not yielded yet, outermost first
    function* flushPending(): Generator<Entry> {
      yield* pending
      pending.length = 0
    }
    async function* visit(treeId: string, relDir: string, destDir: Buffer, included: boolean): AsyncGenerator<Entry> {
      let nodes: TreeNode[]
      try {
        nodes = await trees.load(treeId)
        trees.prefetch(nodes)
      } catch (err) {
        // A damaged or missing tree loses what is below it, not the whole restore.
        onError?.({ path: relDir || '/', message: `cannot read folder listing: ${(err as Error).message}`, blobId: treeId, packId: (err as { packId?: string }).packId })
        return
      }
      for (const n of nodes) {
        const name = n.name.toString()
        const rel = relDir ? `${relDir}/${name}` : name
        const w = included ? (exc?.matches(rel, name) ? 'no' : 'yes') : wanted(rel, name)
        if (w === 'no' || (w === 'maybe' && n.type !== 'dir')) continue
        const e: Entry = { rel, dest: joinBytes(destDir, n.name), node: n }
        if (n.type === 'dir') {
          if (w === 'maybe') {
            pending.push(e)
          } else {
            yield* flushPending()
            yield e
          }
          if (n.subtree) yield* visit(n.subtree, rel, e.dest, w === 'yes')
          if (pending.at(-1) === e) pending.pop() // nothing below it was wanted
        } else {
          yield* flushPending()
          yield e
        }
      }
    }
    if (start && start.type !== 'dir') {
      const rel = start.name.toString()
      if (wanted(rel, rel) === 'yes') yield { rel, dest: joinBytes(targetB, start.name), node: start }
    } else if (start) {
      const rel = start.name.toString()
      yield { rel, dest: joinBytes(targetB, start.name), node: start }
      if (start.subtree) yield* visit(start.subtree, rel, joinBytes(targetB, start.name), wanted(rel, rel) === 'yes')
    } else {
      yield* visit(o.snapshot.tree, '', targetB, false)
    }
  }
}

/** What a restore would read: totals, and every pack (with its size) holding data of the selected files. */
export interface RestorePlan {
  files: number
  bytes: number
  /** Data packs the restore reads, by pack id, with their sizes in bytes. */
  dataPacks: Map<string, number>
  /** Blobs of selected files that no index names (the restore would report those files as damaged). */
  missingBlobs: number
}

/**
 * Plans a restore without writing anything: which data packs it needs (for archive storage classes, where
 * packs must be retrieved before they can be read). Trees are read (metadata packs are always hot).
 */
export async function planRestore(repo: Repository, o: RestoreSelection): Promise<RestorePlan> {
  const trees = new TreeReader(repo)
  const plan: RestorePlan = { files: 0, bytes: 0, dataPacks: new Map(), missingBlobs: 0 }
  for await (const e of entryWalker(trees, o)(null)) {
    if (e.node.type !== 'file') continue
    plan.files++
    plan.bytes += e.node.size ?? 0
    for (const id of e.node.chunks ?? []) {
      const loc = repo.lookup(id)
      if (!loc) {
        plan.missingBlobs++
        continue
      }
      if (!plan.dataPacks.has(loc.packId)) plan.dataPacks.set(loc.packId, repo.cache.getPack(loc.packId)?.size ?? 0)
    }
  }
  return plan
}

/**
 * Restores a snapshot (or part of it) into a directory. Reads packs in
 * order with coalesced range reads, checks every blob (authentication and
 * id) before writing it, restores modes, owners, times, symlinks, hard links
 * and sparse files. Files whose data is damaged or missing are removed and
 * reported; everything else is restored.
 */
export async function restore(repo: Repository, o: RestoreOptions): Promise<RestoreResult> {
  const trees = new TreeReader(repo)
  const result: RestoreResult = { files: 0, dirs: 0, bytes: 0, others: 0, errors: [] }
  const owners = o.owners ?? (process.getuid?.() === 0)
  const walker = entryWalker(trees, o)
  const walkEntries = (reportErrors: boolean): AsyncGenerator<Entry> => walker(reportErrors ? (e) => result.errors.push(e) : null)

  // 2. A first pass that keeps nothing: totals for progress, and unless --overwrite, refuse before writing anything.
  let totalFiles = 0
  let totalBytes = 0
  const clashes: Buffer[] = []
  for await (const e of walkEntries(false)) {
    if (e.node.type === 'dir') continue
    totalFiles++
    totalBytes += e.node.size ?? 0
    if (o.overwrite || clashes.length >= 5) continue
    try {
      await lstat(e.dest)
      clashes.push(e.dest)
    } catch {
      // does not exist: fine
    }
  }
  if (clashes.length) throw new ExistsError(clashes[0].toString(), `refusing to overwrite existing files (use --overwrite): ${clashes.map(String).join(', ')}${clashes.length >= 5 ? ', ...' : ''}`)

  // 3. Restore in batches of BATCH_ENTRIES (memory stays flat however many files there are): directories as
  // the walk reaches them, then each batch's contents pack by pack, links and special files, and metadata.
  await mkdir(o.target, { recursive: true })
  /** The directories the walk is in, outermost first. */
  const dirs: Entry[] = []
  const firstOfInode = new Map<string, PlannedFile>()
  let doneFiles = 0
  let doneBytes = 0
  const progress = (current: string): void => o.onProgress?.({ files: doneFiles, bytes: doneBytes, totalFiles, totalBytes, current })
  // Decrypting, decompressing and hashing go to worker threads when there is enough data to pay for starting
  // them (~40 ms): the main thread keeps a core to drive the file system (2 cores: one worker, ~20 % faster
  // than decoding on the main thread; each worker costs ~50 MB).
  const decodeWorkers = o.decodeWorkers ?? (totalBytes >= WORKER_MIN_BYTES ? Math.min(availableParallelism() - 1, 3) : 0)
  const pool = decodeWorkers > 0
    // One slot per pack read at once, holding the read and its plaintexts: memory is fixed, and nothing moves between threads.
    ? new BlobWorkerPool({ workers: decodeWorkers, slotCount: PACKS_AT_ONCE, slotBytes: MAX_READ + MAX_PLAIN, encKey: repo.keys?.encKey ?? null, idKey: repo.keys?.idKey ?? null })
    : null

  const setMeta = async (e: Entry, failed: Set<Buffer> | null): Promise<void> => {
    const n = e.node
    if (n.type === 'socket' || failed?.has(e.dest)) return
    if ((n.type === 'chardev' || n.type === 'blockdev') && process.getuid?.() !== 0) return
    // utimes takes seconds as a double (~0.24 µs resolution today) and truncates: aim 0.4 µs past the
    // microsecond so that the stored microsecond survives; finer digits cannot be restored through Node.
    const secs = Number(n.mtimeNs / 1000n) / 1e6 + 4e-7
    try {
      if (owners) await lchown(e.dest, n.uid, n.gid)
      if (n.type === 'symlink') {
        await lutimes(e.dest, secs, secs)
      } else {
        await chmod(e.dest, n.mode)
        await utimes(e.dest, secs, secs)
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') result.errors.push({ path: e.rel, message: `cannot set metadata: ${(err as Error).message}` })
    }
  }

  const restoreBatch = async (entries: Entry[]): Promise<void> => {
    // File contents, pack by pack.
    const files: PlannedFile[] = []
    const links: { dest: Buffer; to: PlannedFile; rel: string }[] = []
    const byPack = new Map<string, { loc: BlobLocation; id: string; targets: Target[] }[]>()
    const blobSlot = new Map<string, { loc: BlobLocation; id: string; targets: Target[] }>()
    for (const e of entries) {
      if (e.node.type !== 'file') continue
      const key = e.node.links && e.node.links > 1 ? `${e.node.dev}:${e.node.inode}` : null
      const first = key ? firstOfInode.get(key) : undefined
      if (first) {
        links.push({ dest: e.dest, to: first, rel: e.rel })
        continue
      }
      if (o.overwrite) await rm(e.dest, { force: true })
      const f: PlannedFile = { dest: e.dest, rel: e.rel, node: e.node, remaining: 0, failed: null, fd: null, opening: null, created: false, busy: 0 }
      if (key) firstOfInode.set(key, f)
      files.push(f)
      let offset = 0
      for (const id of e.node.chunks ?? []) {
        const loc = repo.lookup(id)
        if (!loc) {
          f.failed ??= { path: e.rel, message: `data blob ${id} is missing from the repository`, blobId: id }
          break
        }
        let slot = blobSlot.get(id)
        if (!slot) {
          slot = { loc, id, targets: [] }
          blobSlot.set(id, slot)
          const list = byPack.get(loc.packId) ?? []
          list.push(slot)
          byPack.set(loc.packId, list)
        }
        slot.targets.push({ file: f, offset })
        f.remaining++
        offset += loc.rawLength
      }
    }

    // Open files, least recently opened first; a file in use (busy > 0) is never closed under a write.
    const openFiles = new Set<PlannedFile>()
    const handle = async (f: PlannedFile): Promise<number> => {
      if (f.fd !== null) return f.fd
      if (!f.opening) {
        f.opening = (async () => {
          if (openFiles.size >= MAX_OPEN_FILES) {
            for (const victim of openFiles) {
              if (victim.busy > 0 || victim.fd === null) continue
              openFiles.delete(victim)
              const fd = victim.fd
              victim.fd = null
              await closeFd(fd)
              break
            }
          }
          // The first open creates the file (nothing is there: clashes were refused, or removed with --overwrite).
          const fd = await openFd(f.dest, f.created ? fsc.O_WRONLY : fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
          f.created = true
          f.fd = fd
          openFiles.add(f)
          f.opening = null
          return fd
        })()
      }
      return f.opening
    }
    const finishFile = async (f: PlannedFile): Promise<void> => {
      openFiles.delete(f)
      const fd = f.fd
      f.fd = null
      if (fd !== null) await closeFd(fd)
    }


    // Empty files and files without chunks: create them now.
    await forEachLimit(files.filter((f) => f.remaining === 0 && !f.failed), WRITE_CONCURRENCY, async (f) => {
      const fd = await handle(f)
      if ((f.node.size ?? 0) > 0) await ftruncateFd(fd, f.node.size ?? 0)
      await finishFile(f)
      doneFiles++
    })

    /** Writes one blob's plaintext into one target file; closes the file after its last blob. */
    const writeTarget = async (t: Target, plain: Buffer, zero: boolean): Promise<void> => {
      const f = t.file
      if (f.failed) return
      f.busy++
      try {
        if (!(zero && f.node.sparse)) await writeFd(await handle(f), plain, t.offset)
        doneBytes += plain.length
        if (--f.remaining === 0) {
          if (f.node.sparse) await ftruncateFd(await handle(f), f.node.size ?? 0)
          f.busy--
          await finishFile(f)
          f.busy++
          doneFiles++
          progress(f.rel)
        }
      } finally {
        f.busy--
      }
    }

    const packIds = [...byPack.keys()].sort()
    type Slot = { loc: BlobLocation; id: string; targets: Target[] }
    /** Each blob's plaintext (valid until `slot` is released), or the error that kept it from being read. */
    const decodeGroup = async (packId: string, g: Slot[], data: Buffer, from: number, slot: number): Promise<(Buffer | Error)[]> => {
      // A short read (truncated pack) goes the main-thread way, which reports each blob it cuts off; so does a
      // blob too big for a slot (chunks can be up to 8 MiB).
      const fits = data.length <= MAX_READ && g.reduce((n, b) => n + b.loc.rawLength, 0) <= MAX_PLAIN
      if (pool && slot >= 0 && fits && data.length === g.at(-1)!.loc.offset + g.at(-1)!.loc.length - from) {
        data.copy(pool.slotView(slot), 0)
        const out = await pool.decode(slot, data.length, MAX_READ, g.map((b) => ({ id: b.id, offset: b.loc.offset - from, length: b.loc.length, compression: b.loc.compression, rawLength: b.loc.rawLength })))
        return out.map((r, i) => {
          if (Buffer.isBuffer(r)) return r
          const id = g[i].id
          return new IntegrityError(r.problem === 'mismatch' ? `blob ${id} in pack ${packId}: content does not match its id` : `blob ${id} in pack ${packId} is damaged`, { blobId: id, packId })
        })
      }
      return g.map((b) => {
        try {
          return repo.decodeAndCheck(data.subarray(b.loc.offset - from, b.loc.offset - from + b.loc.length), b.id, b.loc)
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e))
        }
      })
    }
    /** Reads one group of neighbouring blobs of a pack, decodes them and writes them where they belong. */
    const restoreGroup = async (packId: string, g: Slot[], slot: number): Promise<void> => {
      const from = g[0].loc.offset
      const to = g.at(-1)!.loc.offset + g.at(-1)!.loc.length
      let decoded: (Buffer | Error)[]
      try {
        const data = await repo.remote.get(packObjectName(packKindOf(g[0].loc.type), packId), { offset: from, length: to - from })
        decoded = await decodeGroup(packId, g, data, from, slot)
      } catch (err) {
        decoded = g.map(() => (err instanceof Error ? err : new Error(String(err))))
      }
      const writes: { t: Target; plain: Buffer; zero: boolean }[] = []
      for (const [i, b] of g.entries()) {
        const r = decoded[i]
        const plain = Buffer.isBuffer(r) ? r : null
        const zero = plain !== null && isAllZero(plain)
        for (const t of b.targets) {
          const f = t.file
          if (f.failed) continue
          if (!plain) {
            f.failed = { path: f.rel, message: r instanceof NotFoundError ? `pack ${packId} is missing` : (r as Error).message, blobId: b.id, packId }
            continue
          }
          writes.push({ t, plain, zero })
        }
      }
      // Writes of one read go out together: small files are many, and each is open, write, close.
      await forEachLimit(writes, WRITE_CONCURRENCY, (w) => writeTarget(w.t, w.plain, w.zero))
    }
    {
      // Four packs at once keep a local disk or a network link busy; each holds at most MAX_READ bytes (MAX_PLAIN decoded).
      await forEachLimit(packIds, PACKS_AT_ONCE, async (packId) => {
        const blobs = byPack.get(packId)!.sort((a, b) => a.loc.offset - b.loc.offset)
        // Coalesce neighbouring blobs into one ranged read.
        const groups: (typeof blobs)[] = []
        let plainBytes = 0
        for (const b of blobs) {
          const g = groups.at(-1)
          const last = g?.at(-1)
          if (g && last && b.loc.offset - (last.loc.offset + last.loc.length) <= COALESCE_GAP && b.loc.offset + b.loc.length - g[0].loc.offset <= MAX_READ && plainBytes + b.loc.rawLength <= MAX_PLAIN) {
            g.push(b)
            plainBytes += b.loc.rawLength
          } else {
            groups.push([b])
            plainBytes = b.loc.rawLength
          }
        }
        for (const g of groups) {
          const slot = pool ? await pool.acquire() : -1
          try {
            await restoreGroup(packId, g, slot)
          } finally {
            if (slot >= 0) pool!.release(slot)
          }
          progress('')
        }
      })
    }

    for (const f of files) {
      if (f.failed) {
        await finishFile(f)
        await rm(f.dest, { force: true })
        result.errors.push(f.failed)
      } else {
        result.files++
        result.bytes += f.node.size ?? 0
      }
    }

    // Hard links, symlinks, special files.
    for (const l of links) {
      if (l.to.failed) {
        result.errors.push({ ...l.to.failed, path: l.rel })
        continue
      }
      if (o.overwrite) await rm(l.dest, { force: true })
      await link(l.to.dest, l.dest)
      result.others++
    }
    for (const e of entries) {
      const n = e.node
      try {
        if (n.type === 'symlink' && n.target) {
          if (o.overwrite) await rm(e.dest, { force: true })
          await symlink(n.target, e.dest)
          result.others++
        } else if (n.type === 'fifo') {
          if (o.overwrite) await rm(e.dest, { force: true })
          await run('mkfifo', ['-m', (n.mode & 0o777).toString(8), e.dest.toString()])
          result.others++
        } else if ((n.type === 'chardev' || n.type === 'blockdev') && process.getuid?.() === 0 && n.rdev !== undefined) {
          if (o.overwrite) await rm(e.dest, { force: true })
          const major = Math.floor(n.rdev / 256) & 0xfff
          const minor = (n.rdev & 0xff) | ((n.rdev >> 12) & 0xfff00)
          await run('mknod', [e.dest.toString(), n.type === 'chardev' ? 'c' : 'b', String(major), String(minor)])
          result.others++
        }
      } catch (err) {
        result.errors.push({ path: e.rel, message: `cannot create ${n.type}: ${(err as Error).message}` })
      }
    }

    // Metadata: owners, modes, times, of everything but directories, in parallel (setting a child's metadata
    // does not touch its directory's mtime); directories get theirs at the end.
    const failed = new Set(files.filter((f) => f.failed).map((f) => f.dest)) // same Buffer objects as entries' dest
    await forEachLimit(entries, WRITE_CONCURRENCY, (e) => setMeta(e, failed))
  }

  // A directory gets its metadata once everything below it is restored (deepest first), so that a read-only
  // directory never blocks work below it and writing into it does not change its restored time. The walk is
  // depth-first: a directory is left (`closed`) when an entry outside it comes; once the batch holding its
  // last entries is restored, it is done. So only the open directories and those closed since the last batch
  // are held, not every directory of the snapshot (a 10 GB restore held 13,000, and the pool slabs their
  // paths pinned: ~45 MiB of malloc'd memory).
  const closed: Entry[] = []
  const under = (e: Entry, d: Entry): boolean => e.rel.length > d.rel.length && e.rel.startsWith(d.rel) && e.rel[d.rel.length] === '/'
  const finishDirs = async (list: Entry[]): Promise<void> => {
    // Deepest first: a directory closes after those below it, and each depth in parallel.
    for (let i = 0; i < list.length; ) {
      const depth = list[i].rel.split('/').length
      let j = i
      while (j < list.length && list[j].rel.split('/').length === depth) j++
      await forEachLimit(list.slice(i, j), WRITE_CONCURRENCY, (e) => setMeta(e, null))
      i = j
    }
  }
  try {
    let batch: Entry[] = []
    for await (const e of walkEntries(true)) {
      while (dirs.length && !under(e, dirs[dirs.length - 1])) closed.push(dirs.pop()!)
      if (e.node.type === 'dir') {
        await mkdir(e.dest, { recursive: true, mode: 0o700 })
        result.dirs++
        dirs.push(e)
        continue
      }
      batch.push(e)
      if (batch.length >= (o.batchEntries ?? BATCH_ENTRIES)) {
        await restoreBatch(batch)
        batch = []
        await finishDirs(closed.splice(0).sort(deepestFirst))
      }
    }
    if (batch.length) await restoreBatch(batch)
  } finally {
    await pool?.close()
  }
  while (dirs.length) closed.push(dirs.pop()!)
  await finishDirs(closed.sort(deepestFirst))
  return result
}

/** Deeper directories first (more '/' in the path); the order within one depth does not matter. */
function deepestFirst(a: Entry, b: Entry): number {
  return b.rel.split('/').length - a.rel.split('/').length
}

function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name])
}

const SLASH = Buffer.from('/')

function isAllZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 4096) if (b[i] !== 0) return false
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

