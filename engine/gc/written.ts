import { IntegrityError, isNotFound } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, packKindOf, type Repository } from '../repo/index.js'
import { decodeTree } from '../tree/index.js'

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
