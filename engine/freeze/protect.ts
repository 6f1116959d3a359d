import { NotFoundError } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, packKindOf, type Repository } from '../repo/index.js'
import type { ProtectionRequest } from '../remote/index.js'
import { listSnapshots, type SnapshotDoc } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'

/** The packs holding every blob (trees and file chunks) a snapshot's tree needs. Throws NotFoundError for a blob the index lacks. */
export async function packsOfSnapshot(repo: Repository, doc: Pick<SnapshotDoc, 'tree'>): Promise<Set<string>> {
  const packs = new Set<string>()
  const add = (id: string): void => {
    const loc = repo.lookup(id)
    if (!loc) throw new NotFoundError(`blob ${id}`, `blob ${id} is not in the index`)
    packs.add(packObjectName(packKindOf(loc.type), loc.packId))
  }
  add(doc.tree)
  const reader = new TreeReader(repo)
  for await (const [, node] of reader.walk(doc.tree)) {
    if (node.type === 'dir' && node.subtree) add(node.subtree)
    for (const c of node.chunks ?? []) add(c)
  }
  return packs
}

/** The index objects that name any of `packObjects` (object names like `data/ab/ab12…`). */
async function indexObjectsNaming(repo: Repository, packObjects: Set<string>): Promise<string[]> {
  const names: string[] = []
  for await (const o of repo.remote.list('index/')) names.push(o.name)
  const hits: string[] = []
  await forEachLimit(names, repo.remote.properties.maxConnections, async (name) => {
    const packs = await repo.loadIndexObject(name)
    if (packs.some((p) => packObjects.has(packObjectName(p.kind, p.packId)))) hits.push(name)
  })
  return hits.sort()
}

/**
 * Makes the objects a freeze needs immutable on a remote that can enforce it
 * (`Remote.protection`): the snapshot object, every pack holding its trees and
 * chunks, and the index objects naming those packs. Returns how many objects.
 */
export async function protectFreeze(repo: Repository, id: string, doc: Pick<SnapshotDoc, 'tree'>, request: ProtectionRequest): Promise<number> {
  const protection = repo.remote.protection
  if (!protection) return 0
  const packs = await packsOfSnapshot(repo, doc)
  const names = [`snapshots/${id}`, ...[...packs].sort(), ...(await indexObjectsNaming(repo, packs))]
  await protection.protect(names, request)
  return names.length
}

/** True when a freeze's retention or legal hold is in force at `now`. */
export function isFreezeProtected(doc: Pick<SnapshotDoc, 'kind' | 'meta'>, now: Date): boolean {
  if (doc.kind !== 'freeze') return false
  const im = (doc.meta as { immutability?: { legal_hold?: boolean; retain_until?: string | null } } | undefined)?.immutability
  if (!im) return false
  if (im.legal_hold) return true
  return typeof im.retain_until === 'string' && Date.parse(im.retain_until) > now.getTime()
}

/**
 * The packs that prune and forget must never remove: those holding any blob of a
 * freeze whose retention period or legal hold is in force at `now`. Every freeze is
 * kept by retention rules whatever its protection (`freezes` lists all of them);
 * `packs` are the pack object names (`data/xx/id`, `meta/xx/id`) of protected ones.
 */
export async function protectedPacks(repo: Repository, now: Date): Promise<{ freezes: string[]; protectedFreezes: string[]; packs: Set<string> }> {
  const all = await listSnapshots(repo)
  const freezes = all.filter((s) => s.kind === 'freeze')
  const packs = new Set<string>()
  const protectedFreezes: string[] = []
  for (const s of freezes) {
    if (!isFreezeProtected(s, now)) continue
    protectedFreezes.push(s.id)
    for (const p of await packsOfSnapshot(repo, s)) packs.add(p)
  }
  return { freezes: freezes.map((s) => s.id), protectedFreezes, packs }
}
