import type { IndexedPack } from '../index/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import type { PackKind } from '../pack/index.js'

export interface RepairIndexResult {
  packs: number
  blobs: number
  /** Packs whose header could not be read and that no old index object describes (left out of the new index). */
  unreadable: { packId: string; message: string }[]
  /** Packs with a damaged header kept because an old index object described them. */
  salvaged: number
  written: string[]
  removed: string[]
}

/**
 * Rebuilds the index from pack headers: reads the header of every pack on
 * the remote, writes new index objects naming all readable packs, then
 * removes the old index objects, and rebuilds the local cache.
 */
export async function repairIndex(
  repo: Repository,
  o: { onProgress?: (p: { phase: string; done: number; total: number }) => void } = {},
): Promise<RepairIndexResult> {
  const list: { id: string; kind: PackKind; size: number }[] = []
  for (const kind of ['data', 'meta'] as const) {
    for await (const obj of repo.remote.list(`${kind}/`)) list.push({ id: obj.name.slice(obj.name.lastIndexOf('/') + 1), kind, size: obj.size })
  }
  // What the existing index objects say, to salvage packs whose own header is damaged.
  const old: string[] = []
  for await (const obj of repo.remote.list('index/')) old.push(obj.name)
  const known = new Map<string, IndexedPack>()
  for (const name of old) {
    try {
      for (const p of await repo.loadIndexObject(name)) known.set(p.packId, p)
    } catch {
      // a damaged index object is what repair is for: use the others
    }
  }
  const packs: IndexedPack[] = []
  const unreadable: RepairIndexResult['unreadable'] = []
  let salvaged = 0
  let done = 0
  await forEachLimit(list, Math.max(2, repo.remote.properties.maxConnections), async (p) => {
    try {
      const entries = await repo.readPackHeader(p.kind, p.id, p.size)
      packs.push({ packId: p.id, kind: p.kind, size: p.size, entries })
    } catch (err) {
      const k = known.get(p.id)
      if (k && k.size === p.size && k.kind === p.kind) {
        // The header is damaged but an index object still describes the pack (its blobs are checked when read).
        packs.push(k)
        salvaged++
      } else {
        unreadable.push({ packId: p.id, message: (err as Error).message })
      }
    }
    o.onProgress?.({ phase: 'packs', done: ++done, total: list.length })
  })
  packs.sort((a, b) => (a.packId < b.packId ? -1 : 1))
  repo.cache.clearIndex()
  const written: string[] = []
  // Index objects of at most 20,000 packs each keep single objects small.
  for (let i = 0; i < packs.length; i += 20000) written.push(await repo.writeIndexObject(packs.slice(i, i + 20000)))
  repo.cache.clearPending(packs.map((p) => p.packId))
  const removed: string[] = []
  for (const n of old.filter((x) => !written.includes(x))) {
    // Index objects a protected freeze needs stay (they are only redundant now; a retention lock would refuse the delete).
    if (await repo.remote.protection?.isProtected(n)) continue
    await repo.remote.delete(n)
    removed.push(n)
  }
  return { packs: packs.length, blobs: packs.reduce((n, p) => n + p.entries.length, 0), unreadable, salvaged, written, removed }
}
