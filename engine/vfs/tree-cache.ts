import type { Repository } from '../repo/index.js'
import { decodeTree, type TreeNode } from '../tree/index.js'

/**
 * Decoded trees for browsing, bounded by the number of entries they hold (a
 * folder of 100,000 files costs what 100,000 one-file folders cost), with
 * loads in flight shared. TreeReader's memo is bounded by tree count, which
 * under many concurrent clients listing huge folders would not bound memory.
 *
 * Contract: `load(id)` resolves to the decoded tree or rejects with the
 * error of `repo.loadBlob`/`decodeTree`; failures are not cached; returned
 * arrays are shared and must not be modified.
 */
export class TreeCache {
  private readonly repo: Repository
  private readonly maxNodes: number
  private readonly lru = new Map<string, TreeNode[]>()
  private readonly loading = new Map<string, Promise<TreeNode[]>>()
  private nodes = 0

  constructor(repo: Repository, maxNodes = 300_000) {
    this.repo = repo
    this.maxNodes = maxNodes
  }

  /** Entries held now. */
  get sizeNodes(): number {
    return this.nodes
  }

  async load(id: string): Promise<TreeNode[]> {
    const hit = this.lru.get(id)
    if (hit) {
      this.lru.delete(id)
      this.lru.set(id, hit)
      return hit
    }
    const pending = this.loading.get(id)
    if (pending) return pending
    const p = (async () => decodeTree(await this.repo.loadBlob(id)))()
    this.loading.set(id, p)
    try {
      const tree = await p
      if (tree.length <= this.maxNodes && !this.lru.has(id)) {
        this.lru.set(id, tree)
        this.nodes += tree.length
        while (this.nodes > this.maxNodes) {
          const [oldId, old] = this.lru.entries().next().value as [string, TreeNode[]]
          this.lru.delete(oldId)
          this.nodes -= old.length
        }
      }
      return tree
    } finally {
      this.loading.delete(id)
    }
  }
}
