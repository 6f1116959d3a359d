import type { IndexedPack } from '../index/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import type { PackKind } from '../pack/index.js'

export interface RepairIndexResult {
  packs: number
  blobs: number
  /** Packs whose header could not be read (left out of the new index). */
  unreadable: { packId: string; message: string }[]
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
  const packs: IndexedPack[] = []
  const unreadable: RepairIndexResult['unreadable'] = []
  let done = 0
  await forEachLimit(list, Math.max(2, repo.remote.properties.maxConnections), async (p) => {
    try {
      const entries = await repo.readPackHeader(p.kind, p.id, p.size)
      packs.push({ packId: p.id, kind: p.kind, size: p.size, entries })
    } catch (err) {
      unreadable.push({ packId: p.id, message: (err as Error).message })
    }
    o.onProgress?.({ phase: 'packs', done: ++done, total: list.length })
  })
  packs.sort((a, b) => (a.packId < b.packId ? -1 : 1))
  const old: string[] = []
  for await (const obj of repo.remote.list('index/')) old.push(obj.name)
  repo.cache.clearIndex()
  const written: string[] = []
  // Index objects of at most 20,000 packs each keep single objects small.
  for (let i = 0; i < packs.length; i += 20000) written.push(await repo.writeIndexObject(packs.slice(i, i + 20000)))
  repo.cache.clearPending(packs.map((p) => p.packId))
  const removed = old.filter((n) => !written.includes(n))
  for (const n of removed) await repo.remote.delete(n)
  return { packs: packs.length, blobs: packs.reduce((n, p) => n + p.entries.length, 0), unreadable, written, removed }
}
