import type { TreeReader } from './tree-reader.js'
import type { TreeNode } from './tree.js'

/** One difference between two trees. */
export interface DiffEntry {
  path: string
  change: 'added' | 'removed' | 'modified' | 'type' | 'metadata'
  type: TreeNode['type']
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type !== 'file') return a.target?.equals(b.target ?? Buffer.alloc(0)) ?? true
  return a.size === b.size && (a.blake3 && b.blake3 ? a.blake3 === b.blake3 : (a.chunks ?? []).join() === (b.chunks ?? []).join())
}

function sameMeta(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && (a.type === 'dir' || a.mtimeNs === b.mtimeNs)
}

/** Compares two trees, skipping identical subtrees by id. Paths are relative to the roots. */
export async function diffTrees(reader: TreeReader, a: string | null, b: string | null, prefix = ''): Promise<DiffEntry[]> {
  if (a === b) return []
  const na = a ? await reader.load(a) : []
  const nb = b ? await reader.load(b) : []
  const out: DiffEntry[] = []
  let i = 0
  let j = 0
  const all = async (n: TreeNode, path: string, change: 'added' | 'removed'): Promise<void> => {
    out.push({ path, change, type: n.type })
    if (n.type === 'dir' && n.subtree) {
      for (const d of await diffTrees(reader, change === 'removed' ? n.subtree : null, change === 'added' ? n.subtree : null, path)) out.push(d)
    }
  }
  while (i < na.length || j < nb.length) {
    const c = i >= na.length ? 1 : j >= nb.length ? -1 : Buffer.compare(na[i].name, nb[j].name)
    if (c < 0) {
      await all(na[i], join(prefix, na[i]), 'removed')
      i++
    } else if (c > 0) {
      await all(nb[j], join(prefix, nb[j]), 'added')
      j++
    } else {
      const x = na[i]
      const y = nb[j]
      const path = join(prefix, x)
      if (x.type !== y.type) {
        out.push({ path, change: 'type', type: y.type })
      } else if (x.type === 'dir') {
        if (!sameMeta(x, y)) out.push({ path, change: 'metadata', type: 'dir' })
        out.push(...(await diffTrees(reader, x.subtree ?? null, y.subtree ?? null, path)))
      } else if (!sameContent(x, y)) {
        out.push({ path, change: 'modified', type: x.type })
      } else if (!sameMeta(x, y)) {
        out.push({ path, change: 'metadata', type: x.type })
      }
      i++
      j++
    }
  }
  return out
}

function join(prefix: string, n: TreeNode): string {
  return prefix ? `${prefix}/${n.name.toString()}` : n.name.toString()
}
