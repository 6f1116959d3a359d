import { forEachLimit, type Repository } from '../repo/index.js'
import type { IndexedPack } from '../index/index.js'

const PACK_NAME = /^(data|meta)\/[0-9a-f]{2}\/([0-9a-f]{64})$/

/**
 * Finds packs on the remote that neither an index object nor the local cache
 * knows (an interrupted run renamed them into place but was killed before
 * recording them), reads their headers and records them in the cache as
 * pending, so the next backup reuses their blobs instead of storing them
 * again and indexes them at its end. Packs whose header cannot be read are
 * left alone (verify reports them; repair index decides).
 *
 * Lists every pack: meant for resuming an interrupted operation, not for every run.
 */
export async function adoptUnindexedPacks(repo: Repository): Promise<{ packs: number; bytes: number }> {
  const unknown: { kind: 'data' | 'meta'; id: string; size: number }[] = []
  for (const kind of ['data', 'meta'] as const) {
    for await (const o of repo.remote.list(`${kind}/`)) {
      const m = PACK_NAME.exec(o.name)
      if (m && !repo.cache.hasPack(m[2])) unknown.push({ kind, id: m[2], size: o.size })
    }
  }
  const adopted: IndexedPack[] = []
  await forEachLimit(unknown, repo.remote.properties.maxConnections, async (p) => {
    try {
      const entries = await repo.readPackHeader(p.kind, p.id, p.size)
      adopted.push({ packId: p.id, kind: p.kind, size: p.size, entries })
    } catch {
      // damaged or foreign: not ours to adopt
    }
  })
  if (adopted.length) repo.cache.addPacks(adopted, { pending: true })
  return { packs: adopted.length, bytes: adopted.reduce((s, p) => s + p.size, 0) }
}
