import { IntegrityError, isNotFound } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, packKindOf, type Repository } from '../repo/index.js'
import { decodeTree } from '../tree/index.js'
import type { IndexedPack } from '../index/index.js'
import { listPrunePlans } from './plan.js'

/**
 * Checks that every blob a just-written snapshot names is still stored: after the writer's lock lapsed
 * (see RepoSession.lapsed), a prune may have taken it for dead and deleted packs it reused. Reloads the
 * index first (a prune that deleted packs rewrote it), then looks up every tree and chunk and checks that
 * their packs exist. Resolves when all are there; throws IntegrityError naming the first one that is not.
 */
export async function checkSnapshotStored(repo: Repository, treeId: string): Promise<void> {
  await repo.syncIndex()
  const packs = new Set<string>()
  const seen = new Set<string>()
  const need = (id: string): void => {
    const loc = repo.lookup(id)
    if (!loc) throw new IntegrityError(`blob ${id} is no longer stored`, { blobId: id })
    packs.add(packObjectName(packKindOf(loc.type), loc.packId))
  }
  let frontier = [treeId]
  while (frontier.length) {
    const next: string[] = []
    for (const id of frontier) need(id)
    await forEachLimit(frontier, repo.remote.properties.maxConnections, async (id) => {
      for (const n of decodeTree(await repo.loadBlob(id))) {
        if (n.type === 'dir' && n.subtree && !seen.has(n.subtree)) {
          seen.add(n.subtree)
          next.push(n.subtree)
        }
        for (const c of n.chunks ?? []) need(c)
      }
    })
    frontier = next
  }
  await forEachLimit([...packs], repo.remote.properties.maxConnections, async (name) => {
    try {
      await repo.remote.stat(name)
    } catch (err) {
      if (isNotFound(err)) throw new IntegrityError(`${name} is gone`, { packId: name.slice(name.lastIndexOf('/') + 1) }, { cause: err })
      throw err
    }
  })
}

/**
 * Run by a writer after its snapshot object is written, before its lock ends. A prune that marked while
 * this writer ran may have repacked packs it reused: a repack rewrites the index without the old pack at
 * once (the sweep deletes it later, and keeps it when a snapshot made since needs it). A blob only the old
 * pack held (data no snapshot needed at the mark, back in this snapshot) was then in no index until that
 * sweep: a cache built meanwhile could not find it. This indexes such packs again (from the plan's copy of
 * their index entries, once the pack is found still stored), so the snapshot is whole for every reader at
 * once; the sweep keeps them, since this snapshot needs them. Only plans not in `plansSeen` (those read
 * before deduplicating, whose packs were excluded) are looked at; with none, this costs one listing of
 * `prune/`. Resolves to the number of packs indexed again.
 */
export async function reindexReusedPacks(repo: Repository, treeId: string, plansSeen: readonly string[]): Promise<number> {
  const seenBefore = new Set(plansSeen)
  const plans = (await listPrunePlans(repo, () => undefined)).filter((p) => !seenBefore.has(p.id) && p.doc.repacked.length > 0)
  if (plans.length === 0) return 0
  await repo.syncIndex()
  const holders = new Map<string, IndexedPack>()
  for (const p of plans) {
    const repacked = new Set(p.doc.repacked)
    for (const k of p.packs) if (repacked.has(packObjectName(k.kind, k.packId))) for (const e of k.entries) holders.set(e.id, k)
  }
  let indexed = 0
  // Level by level: a tree only an old pack holds must be indexed again before it can be read.
  const rescue = async (ids: Iterable<string>): Promise<void> => {
    const packs = new Map<string, IndexedPack>()
    for (const id of ids) {
      if (repo.lookup(id)) continue
      const k = holders.get(id)
      if (k) packs.set(k.packId, k)
    }
    const present: IndexedPack[] = []
    for (const k of packs.values()) {
      try {
        await repo.remote.stat(packObjectName(k.kind, k.packId))
        present.push(k)
      } catch (err) {
        if (!isNotFound(err)) throw err // gone: checkSnapshotStored (a lapsed lock) reports it
      }
    }
    if (present.length === 0) return
    await repo.writeIndexObject(present)
    indexed += present.length
  }
  const seen = new Set<string>()
  let frontier = [treeId]
  while (frontier.length) {
    await rescue(frontier)
    const next: string[] = []
    const chunks: string[] = []
    await forEachLimit(frontier, repo.remote.properties.maxConnections, async (id) => {
      if (!repo.lookup(id)) return
      for (const n of decodeTree(await repo.loadBlob(id))) {
        if (n.type === 'dir' && n.subtree && !seen.has(n.subtree)) {
          seen.add(n.subtree)
          next.push(n.subtree)
        }
        for (const c of n.chunks ?? []) chunks.push(c)
      }
    })
    await rescue(chunks)
    frontier = next
  }
  return indexed
}
