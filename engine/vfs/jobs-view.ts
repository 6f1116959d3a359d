import { createHash } from 'node:crypto'
import { NotFoundError, UsageError, isNotFound } from '../errors.js'
import type { TreeNode } from '../tree/index.js'
import type { SnapshotView, VfsEntry } from './snapshot-view.js'
import type { VfsFile } from './vfs-file.js'

/** What the WebDAV/HTML server browses: a SnapshotView, or a JobsView over several. */
export interface BrowseView {
  /** Resolves a path to its entry. Throws NotFoundError, or UsageError for a malformed path. */
  stat(path: readonly Buffer[]): Promise<VfsEntry>
  /** Lists a folder. */
  list(path: readonly Buffer[]): Promise<VfsEntry[]>
  /** Opens a file node from `stat`, `list` or `walk` of this view. */
  openNode(node: TreeNode): VfsFile
  /** Walks a folder depth-first: each entry below it with its path relative to it. */
  walk(path: readonly Buffer[]): AsyncGenerator<[Buffer[], VfsEntry]>
}

/** One job folder of a JobsView: the job's name and its repository's view (null: nothing to browse, e.g. a restic job). */
export interface JobFolder {
  name: string
  view: SnapshotView | null
}

const EPOCH = new Date(0)

/**
 * The daemon's browsing view when its jobs use different repositories: one folder per job at the top,
 * each showing that job's folder of its repository's view (`/<job>/<snapshot>/...`, `/<job>/latest/...`).
 * A job without snapshots yet is an empty folder.
 */
export class JobsView implements BrowseView {
  private readonly folders: Map<string, JobFolder>
  /** Which view a node came from, so `openNode` reads it from the right repository. */
  private readonly owners = new WeakMap<TreeNode, SnapshotView>()

  constructor(folders: readonly JobFolder[]) {
    this.folders = new Map(folders.map((f) => [f.name, f]))
  }

  private folder(part: Buffer): JobFolder {
    const f = this.folders.get(part.toString('utf8'))
    if (!f || !Buffer.from(f.name).equals(part)) {
      if (part.length <= 2 && part.every((c) => c === 0x2e)) throw new UsageError('"." and ".." are not allowed in paths')
      throw new NotFoundError(part.toString(), `no such job: ${part.toString()}`)
    }
    return f
  }

  private own(e: VfsEntry, view: SnapshotView): VfsEntry {
    if (e.node) this.owners.set(e.node, view)
    return e
  }

  private jobEntry(f: JobFolder): VfsEntry {
    return { name: Buffer.from(f.name), type: 'dir', size: 0, mtime: EPOCH, tag: createHash('sha256').update(`job\0${f.name}`).digest('hex').slice(0, 32) }
  }

  async stat(path: readonly Buffer[]): Promise<VfsEntry> {
    if (path.length === 0) return { name: Buffer.alloc(0), type: 'dir', size: 0, mtime: EPOCH, tag: createHash('sha256').update([...this.folders.keys()].join('\0')).digest('hex').slice(0, 32) }
    const f = this.folder(path[0])
    if (!f.view) {
      if (path.length === 1) return this.jobEntry(f)
      throw new NotFoundError(path[1].toString())
    }
    try {
      return this.own(await f.view.stat([Buffer.from(f.name), ...path.slice(1)]), f.view)
    } catch (err) {
      if (path.length === 1 && isNotFound(err)) return this.jobEntry(f)
      throw err
    }
  }

  async list(path: readonly Buffer[]): Promise<VfsEntry[]> {
    if (path.length === 0) return [...this.folders.values()].map((f) => this.jobEntry(f))
    const f = this.folder(path[0])
    if (!f.view) {
      if (path.length === 1) return []
      throw new NotFoundError(path[1].toString())
    }
    try {
      const view = f.view
      return (await view.list([Buffer.from(f.name), ...path.slice(1)])).map((e) => this.own(e, view))
    } catch (err) {
      if (path.length === 1 && isNotFound(err)) return []
      throw err
    }
  }

  openNode(node: TreeNode): VfsFile {
    const view = this.owners.get(node)
    if (!view) throw new NotFoundError('file', 'this file was not found through this view')
    return view.openNode(node)
  }

  async *walk(path: readonly Buffer[]): AsyncGenerator<[Buffer[], VfsEntry]> {
    if (path.length === 0) {
      for (const f of this.folders.values()) {
        const name = Buffer.from(f.name)
        yield [[name], this.jobEntry(f)]
        for await (const [p, e] of this.walk([name])) yield [[name, ...p], e]
      }
      return
    }
    const f = this.folder(path[0])
    if (!f.view) return
    const view = f.view
    try {
      await view.stat([Buffer.from(f.name), ...path.slice(1)])
    } catch (err) {
      if (path.length === 1 && isNotFound(err)) return
      throw err
    }
    for await (const [p, e] of view.walk([Buffer.from(f.name), ...path.slice(1)])) yield [p, this.own(e, view)]
  }
}
