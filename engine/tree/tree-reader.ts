import { NotFoundError, UsageError } from '../errors.js'
import type { Repository } from '../repo/index.js'
import { decodeTree, type TreeNode } from './tree.js'

/** Subtrees read ahead at most (decoded trees held in memory until used). */
const PREFETCH = 64

/**
 * Loads tree blobs, with a small cache of decoded trees, and reads ahead:
 * `prefetch` starts loading the subtrees of a listing, so a depth-first walk
 * of 1,500 folders waits for the remote once per batch, not once per folder.
 */
export class TreeReader {
  private readonly repo: Repository
  private readonly memo = new Map<string, TreeNode[]>()
  private readonly ahead = new Map<string, Promise<TreeNode[]>>()
  private readonly maxEntries: number
  constructor(repo: Repository, maxEntries = 256) {
    this.repo = repo
    this.maxEntries = maxEntries
  }

  async load(id: string): Promise<TreeNode[]> {
    const hit = this.memo.get(id)
    if (hit) return hit
    const pending = this.ahead.get(id)
    if (pending) {
      this.ahead.delete(id)
      return pending
    }
    return this.fetch(id)
  }

  private async fetch(id: string): Promise<TreeNode[]> {
    const nodes = decodeTree(await this.repo.loadBlob(id))
    if (this.memo.size >= this.maxEntries) this.memo.delete(this.memo.keys().next().value as string)
    this.memo.set(id, nodes)
    return nodes
  }

  /** Starts loading the subtrees of `nodes` (up to PREFETCH outstanding); `load` then finds them. Errors surface in `load`. */
  prefetch(nodes: readonly TreeNode[]): void {
    for (const n of nodes) {
      if (this.ahead.size >= PREFETCH) return
      if (n.type !== 'dir' || !n.subtree || this.memo.has(n.subtree) || this.ahead.has(n.subtree)) continue
      const p = this.fetch(n.subtree)
      p.catch(() => undefined) // reported to whoever loads it
      this.ahead.set(n.subtree, p)
    }
  }

  /**
   * Resolves a '/'-separated path (bytes, relative to the root tree) to its
   * node. The root itself is returned as a synthetic dir node with an empty name.
   */
  async resolve(rootId: string, path: Buffer): Promise<TreeNode> {
    const parts = splitPath(path)
    let node: TreeNode = { name: Buffer.alloc(0), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: 0n, subtree: rootId }
    for (const part of parts) {
      if (node.type !== 'dir' || !node.subtree) throw new UsageError(`not a directory in the snapshot: ${path.toString()}`)
      const nodes = await this.load(node.subtree)
      const next = nodes.find((n) => n.name.equals(part))
      if (!next) throw new NotFoundError(path.toString(), `no such path in the snapshot: ${path.toString()}`)
      node = next
    }
    return node
  }

  /**
   * Walks a subtree depth-first in stored order, yielding (path, node) with
   * paths as bytes relative to the start. An explicit stack, not nested
   * generators (each level of those would touch every yielded entry), and
   * subtrees are read ahead.
   */
  async *walk(treeId: string, prefix: Buffer = Buffer.alloc(0)): AsyncGenerator<[Buffer, TreeNode]> {
    const first = await this.load(treeId)
    this.prefetch(first)
    const stack: { nodes: TreeNode[]; i: number; prefix: Buffer }[] = [{ nodes: first, i: 0, prefix }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]
      if (top.i >= top.nodes.length) {
        stack.pop()
        continue
      }
      const n = top.nodes[top.i++]
      const p = top.prefix.length ? Buffer.concat([top.prefix, SLASH, n.name]) : n.name
      yield [p, n]
      if (n.type === 'dir' && n.subtree) {
        const nodes = await this.load(n.subtree)
        this.prefetch(nodes)
        stack.push({ nodes, i: 0, prefix: p })
      }
    }
  }
}

const SLASH = Buffer.from('/')

/** Splits a path into its non-empty components (leading, trailing and doubled '/' ignored). */
export function splitPath(path: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (i > start) {
        const part = path.subarray(start, i)
        if (!(part.length === 1 && part[0] === 0x2e)) out.push(part)
      }
      start = i + 1
    }
  }
  return out
}
