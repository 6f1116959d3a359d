import { createHash } from 'node:crypto'
import { NotFoundError, UsageError, isNotFound } from '../errors.js'
import type { Repository } from '../repo/index.js'
import { loadSnapshot, type Snapshot } from '../snapshot/index.js'
import { TreeReader, compareNodes, type NodeType, type TreeNode } from '../tree/index.js'
import { ChunkCache, type ChunkCacheOptions } from './chunk-cache.js'
import { TreeCache } from './tree-cache.js'
import { VfsFile } from './vfs-file.js'

/** One entry of the view: a virtual folder (root, job, freezes, snapshot) or an entry of a snapshot's tree. */
export interface VfsEntry {
  /** Name bytes (virtual folders have UTF-8 names; tree entries keep their stored bytes). */
  name: Buffer
  type: NodeType
  /** Bytes for files, 0 otherwise. */
  size: number
  mtime: Date
  /**
   * A stable identity of the content, for HTTP ETags: a file's whole-content
   * BLAKE3, a folder's subtree id, or a digest of a virtual folder's listing.
   */
  tag: string
  /** The tree node, for entries inside a snapshot (undefined for virtual folders). */
  node?: TreeNode
  /** The snapshot a snapshot folder (or `latest`) stands for. */
  snapshot?: Snapshot
}

/** Options of `SnapshotView.open`. */
export interface SnapshotViewOptions {
  /** The snapshot list is re-read when older than this (default 5,000 ms). */
  refreshMs?: number
  /** The clock (ms since the epoch); default Date.now. */
  now?: () => number
  /** Chunk cache sizing. */
  cache?: ChunkCacheOptions
  /** Tree entries kept decoded for browsing, over all cached folders (default 300,000). */
  maxTreeNodes?: number
  /** Told about snapshot objects that cannot be read (they are left out of the view). */
  onWarning?: (message: string) => void
}

/** The folder listing freezes at the root. */
export const FREEZES_FOLDER = 'freezes'
/** The alias of a job's newest snapshot. */
export const LATEST_FOLDER = 'latest'

interface Group {
  name: string
  mtime: Date
  /** folder name → snapshot, in listing order (oldest first, then `latest`). */
  folders: Map<string, Snapshot>
  tag: string
}

interface Layout {
  groups: Map<string, Group>
  mtime: Date
  tag: string
}

/** Where a path leads: a virtual level, or a node of a snapshot's tree. */
type Resolved =
  | { level: 'root'; entry: VfsEntry }
  | { level: 'group'; entry: VfsEntry; group: Group }
  | { level: 'tree'; entry: VfsEntry; snapshot: Snapshot; node: TreeNode }

const EPOCH = new Date(0)
/** Chunk offsets kept for open files over all of them (8 bytes each). */
const MAX_OPEN_FILE_CHUNKS = 1_000_000

/**
 * A read-only directory/file view of a repository for browsing (the WebDAV
 * server and the HTML view adapt it):
 *
 * ```
 * /<job or host>/<YYYY-MM-DDTHH-MM-SS>_<id8>/...   snapshots without a job under their host name
 * /<job or host>/latest/...                        the newest snapshot of that job
 * /freezes/<milestone or event>_<YYYY-MM-DDTHH-MM-SS>/...
 * ```
 *
 * Inside a snapshot folder: the snapshot's tree exactly. Paths are lists of
 * name components (bytes); `..`, `.`, empty components and components with
 * NUL or '/' are refused (UsageError), so no path leaves the view. One view
 * serves any number of concurrent readers on one open repository; the
 * snapshot list is re-read when older than `refreshMs`, loading only new
 * snapshot objects (and new index objects when new snapshots appeared).
 */
export class SnapshotView {
  readonly repo: Repository
  readonly cache: ChunkCache
  private readonly trees: TreeCache
  private readonly refreshMs: number
  private readonly now: () => number
  private readonly onWarning: (message: string) => void
  private readonly loaded = new Map<string, Snapshot>()
  private layout: Layout = { groups: new Map(), mtime: EPOCH, tag: '' }
  private refreshedAt = -Infinity
  private refreshing: Promise<void> | null = null
  /** Open files by content identity (LRU): their chunk offset tables are reused across requests. */
  private readonly files = new Map<string, VfsFile>()
  /** Chunks over all tables in `files` (bounded: a 1 TB file alone has a million). */
  private fileChunks = 0

  private constructor(repo: Repository, o: SnapshotViewOptions) {
    this.repo = repo
    this.cache = new ChunkCache(repo, o.cache)
    this.trees = new TreeCache(repo, o.maxTreeNodes)
    this.refreshMs = o.refreshMs ?? 5000
    this.now = o.now ?? Date.now
    this.onWarning = o.onWarning ?? (() => undefined)
  }

  /** Creates a view of an open repository and reads the snapshot list once. */
  static async open(repo: Repository, o: SnapshotViewOptions = {}): Promise<SnapshotView> {
    const v = new SnapshotView(repo, o)
    await v.refresh(true)
    return v
  }

  /**
   * Re-reads the snapshot list if it is older than `refreshMs` (or always with
   * `force`). Concurrent callers share one refresh.
   */
  async refresh(force = false): Promise<void> {
    if (!force && this.now() - this.refreshedAt < this.refreshMs) return
    if (this.refreshing) return this.refreshing
    this.refreshing = (async () => {
      try {
        await this.reload()
        this.refreshedAt = this.now()
      } finally {
        this.refreshing = null
      }
    })()
    return this.refreshing
  }

  private async reload(): Promise<void> {
    const ids = new Set<string>()
    for await (const o of this.repo.remote.list('snapshots/')) ids.add(o.name.slice('snapshots/'.length))
    const fresh = [...ids].filter((id) => !this.loaded.has(id))
    let changed = fresh.length > 0
    for (const id of this.loaded.keys()) {
      if (!ids.has(id)) {
        this.loaded.delete(id)
        changed = true
      }
    }
    if (fresh.length > 0) {
      // New snapshots name chunks from index objects this process has not loaded yet.
      await this.repo.syncIndex()
      for (const id of fresh) {
        try {
          this.loaded.set(id, await loadSnapshot(this.repo, id))
        } catch (err) {
          if (isNotFound(err)) continue
          this.onWarning(`snapshot ${id} cannot be read and is left out: ${(err as Error).message}`)
        }
      }
    }
    if (changed || this.refreshedAt === -Infinity) this.layout = buildLayout([...this.loaded.values()])
  }

  /** Resolves a path to its entry. Throws NotFoundError, or UsageError for a malformed path. */
  async stat(path: readonly Buffer[]): Promise<VfsEntry> {
    return (await this.resolve(path)).entry
  }

  /** Lists a folder, in name order (virtual folders: `latest` last). Throws UsageError for a file. */
  async list(path: readonly Buffer[]): Promise<VfsEntry[]> {
    const r = await this.resolve(path)
    return this.listResolved(r)
  }

  private async listResolved(r: Resolved): Promise<VfsEntry[]> {
    if (r.level === 'root') {
      return [...this.layout.groups.values()].map((g) => ({ name: Buffer.from(g.name), type: 'dir' as const, size: 0, mtime: g.mtime, tag: g.tag }))
    }
    if (r.level === 'group') {
      return [...r.group.folders].map(([name, s]) => snapshotEntry(name, s))
    }
    if (r.node.type !== 'dir') throw new UsageError(`not a folder: ${r.entry.name.toString()}`)
    const nodes = r.node.subtree ? await this.trees.load(r.node.subtree) : []
    return nodes.map(nodeEntry)
  }

  /** Opens a file for range reads (reads no data). Throws UsageError when the path is not a file. */
  async openFile(path: readonly Buffer[]): Promise<VfsFile> {
    const e = await this.stat(path)
    if (!e.node || e.type !== 'file') throw new UsageError(`not a file: ${path.map((p) => p.toString()).join('/')}`)
    return this.openNode(e.node)
  }

  /** Opens a file node (from `stat`, `list` or `walk`) for range reads. */
  openNode(node: TreeNode): VfsFile {
    const key = `${node.blake3 ?? ''}:${node.size ?? 0}:${node.chunks?.length ?? 0}:${node.chunks?.[0] ?? ''}`
    const hit = this.files.get(key)
    if (hit) {
      this.files.delete(key)
      this.files.set(key, hit)
      return hit
    }
    const f = VfsFile.open(this.repo, this.cache, node)
    this.files.set(key, f)
    this.fileChunks += f.chunkCount
    while (this.files.size > 1 && (this.files.size > 256 || this.fileChunks > MAX_OPEN_FILE_CHUNKS)) {
      const [oldKey, old] = this.files.entries().next().value as [string, VfsFile]
      this.files.delete(oldKey)
      this.fileChunks -= old.chunkCount
    }
    return f
  }

  /**
   * Walks a folder depth-first, yielding each entry below it with its path
   * relative to the folder (components). Snapshot trees are read with
   * read-ahead; memory does not grow with the number of entries.
   */
  async *walk(path: readonly Buffer[]): AsyncGenerator<[Buffer[], VfsEntry]> {
    const r = await this.resolve(path)
    yield* this.walkResolved(r, [])
  }

  private async *walkResolved(r: Resolved, prefix: Buffer[]): AsyncGenerator<[Buffer[], VfsEntry]> {
    if (r.level === 'tree') {
      if (r.node.type !== 'dir' || !r.node.subtree) return
      // A reader of its own per walk: its read-ahead serves this walk and is dropped with it.
      for await (const [p, n] of new TreeReader(this.repo, 16).walk(r.node.subtree)) {
        yield [[...prefix, ...splitBytes(p)], nodeEntry(n)]
      }
      return
    }
    for (const e of await this.listResolved(r)) {
      const p = [...prefix, e.name]
      yield [p, e]
      const child = await this.resolveChild(r, e.name)
      yield* this.walkResolved(child, p)
    }
  }

  private async resolve(path: readonly Buffer[]): Promise<Resolved> {
    for (const part of path) checkComponent(part)
    await this.refresh()
    let r: Resolved = { level: 'root', entry: { name: Buffer.alloc(0), type: 'dir', size: 0, mtime: this.layout.mtime, tag: this.layout.tag } }
    for (const part of path) r = await this.resolveChild(r, part)
    return r
  }

  private async resolveChild(r: Resolved, part: Buffer): Promise<Resolved> {
    const missing = (): NotFoundError => new NotFoundError(part.toString(), `no such file or folder: ${part.toString()}`)
    if (r.level === 'root') {
      const g = this.layout.groups.get(part.toString('utf8'))
      if (!g || !Buffer.from(g.name).equals(part)) throw missing()
      return { level: 'group', group: g, entry: { name: Buffer.from(g.name), type: 'dir', size: 0, mtime: g.mtime, tag: g.tag } }
    }
    if (r.level === 'group') {
      const name = part.toString('utf8')
      const s = r.group.folders.get(name)
      if (!s || !Buffer.from(name).equals(part)) throw missing()
      const node: TreeNode = { name: part, type: 'dir', mode: 0o555, uid: 0, gid: 0, mtimeNs: BigInt(Date.parse(s.time)) * 1000000n, subtree: s.tree }
      return { level: 'tree', snapshot: s, node, entry: snapshotEntry(name, s) }
    }
    if (r.node.type !== 'dir') throw new NotFoundError(part.toString(), `not a folder: ${r.entry.name.toString()}`)
    const nodes = r.node.subtree ? await this.trees.load(r.node.subtree) : []
    const node = findNode(nodes, part)
    if (!node) throw missing()
    return { level: 'tree', snapshot: r.snapshot, node, entry: nodeEntry(node) }
  }
}

/** Refuses components that could step outside the view or are not names at all. */
function checkComponent(part: Buffer): void {
  if (part.length === 0) throw new UsageError('empty path component')
  if (part.length <= 2 && part.every((c) => c === 0x2e)) throw new UsageError('"." and ".." are not allowed in paths')
  if (part.includes(0) || part.includes(0x2f)) throw new UsageError('path components must not contain NUL or "/"')
}

function splitBytes(p: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      out.push(p.subarray(start, i))
      start = i + 1
    }
  }
  return out
}

/** Binary search (trees are stored sorted by name bytes), falling back to a scan for trees that are not. */
function findNode(nodes: readonly TreeNode[], name: Buffer): TreeNode | undefined {
  let lo = 0
  let hi = nodes.length - 1
  const probe = { name } as TreeNode
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const c = compareNodes(nodes[mid], probe)
    if (c === 0) return nodes[mid]
    if (c < 0) lo = mid + 1
    else hi = mid - 1
  }
  return nodes.find((n) => n.name.equals(name))
}

function nodeEntry(n: TreeNode): VfsEntry {
  return {
    name: n.name,
    type: n.type,
    size: n.type === 'file' ? n.size ?? 0 : 0,
    mtime: new Date(Number(n.mtimeNs / 1000000n)),
    tag: n.blake3 ?? n.subtree ?? digest([n.type, n.name.toString('hex'), n.mtimeNs.toString(), ...(n.chunks ?? [])]),
    node: n,
  }
}

function snapshotEntry(name: string, s: Snapshot): VfsEntry {
  return { name: Buffer.from(name), type: 'dir', size: 0, mtime: new Date(s.time), tag: s.tree, snapshot: s }
}

function digest(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 32)
}

/** `2026-03-01T12:30:05.123Z` → `2026-03-01T12-30-05` (UTC; no characters file managers choke on). */
export function folderTime(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return 'unknown-time'
  return d.toISOString().slice(0, 19).replace(/:/g, '-')
}

/** A name usable as one path component: no '/', no NUL, no control characters, not empty, not '.' or '..'. */
export function safeFolderName(s: string): string {
  const cleaned = s.replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim()
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? '_' : cleaned
}

/** The event name of a freeze, from its metadata (milestone, hand-off, event...), or "freeze". */
function freezeName(s: Snapshot): string {
  const m = s.meta ?? {}
  for (const key of ['milestone', 'handoff', 'event', 'name', 'audit', 'title']) {
    const v = m[key]
    if (typeof v === 'string' && v.trim() !== '') return v
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>
      // coldstore freeze stores { event: { type, name } }; an audit has a type and no name.
      for (const inner of [o.name, o.title, o.type]) if (typeof inner === 'string' && inner.trim() !== '') return inner
    }
  }
  return 'freeze'
}

/** Builds the virtual folders from the snapshot list. */
function buildLayout(all: Snapshot[]): Layout {
  all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1))
  const byGroup = new Map<string, Snapshot[]>()
  const freezes: Snapshot[] = []
  for (const s of all) {
    if (s.kind === 'freeze') {
      freezes.push(s)
      continue
    }
    let g = safeFolderName(s.job ?? s.host)
    if (g === FREEZES_FOLDER) g = `${FREEZES_FOLDER} (job)`
    const list = byGroup.get(g) ?? []
    list.push(s)
    byGroup.set(g, list)
  }
  const groups = new Map<string, Group>()
  for (const name of [...byGroup.keys()].sort()) {
    const list = byGroup.get(name)!
    const folders = new Map<string, Snapshot>()
    for (const s of list) folders.set(`${folderTime(s.time)}_${s.id.slice(0, 8)}`, s)
    const last = list[list.length - 1]
    folders.set(LATEST_FOLDER, last)
    groups.set(name, { name, mtime: new Date(last.time), folders, tag: digest(list.map((s) => s.id)) })
  }
  if (freezes.length > 0) {
    const folders = new Map<string, Snapshot>()
    for (const s of freezes) {
      let name = `${safeFolderName(freezeName(s))}_${folderTime(s.time)}`
      if (folders.has(name)) name = `${name}_${s.id.slice(0, 8)}`
      folders.set(name, s)
    }
    groups.set(FREEZES_FOLDER, { name: FREEZES_FOLDER, mtime: new Date(freezes[freezes.length - 1].time), folders, tag: digest(freezes.map((s) => s.id)) })
  }
  const mtime = all.length ? new Date(all[all.length - 1].time) : EPOCH
  return { groups, mtime, tag: digest(all.map((s) => s.id)) }
}
