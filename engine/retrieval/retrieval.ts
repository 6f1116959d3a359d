/**
 * Archive retrieval for restores and data checks: which of the data packs an operation needs are readable
 * now, which are being retrieved, and which must be requested first (S3 Glacier Flexible Retrieval and
 * Deep Archive); and the requests themselves. Works through the remote's `archive` capability; remotes
 * without it have nothing to retrieve.
 */
import { isNotFound } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import { DATA_PREFIX, type RetrievalTier } from '../remote/index.js'

/** A count of objects and their bytes. */
export interface Tally {
  objects: number
  bytes: number
}

/** What `checkRetrieval` found. */
export interface RetrievalCheck {
  /** False when the remote has no storage classes: every pack is readable and nothing needs planning. */
  archive: boolean
  /** The remote's provider id for prices (`aws-s3`, `gcs`...), null without classes. */
  provider: string | null
  /** The class data packs are written to, null without classes. */
  dataClass: string | null
  /** Every data pack the operation reads. */
  total: Tally
  /** Readable now (hot, instant-access, or restored). */
  ready: Tally
  /** Retrieval requested and still in progress. */
  pending: Tally
  /** In an archive class and not requested yet. */
  archived: Tally
  /** Names of the archived (not requested) packs, for `requestRetrieval`. */
  archivedNames: string[]
  /** Names of the packs whose retrieval is in progress. */
  pendingNames: string[]
  /** Packs the index names but the remote does not have (reported by the restore itself). */
  missing: Tally
  /** Tallies per storage class of the needed packs. */
  byClass: Record<string, Tally>
  /** Tallies per storage class of the archived (not requested) packs: what a retrieval would cost. */
  archivedByClass: Record<string, Tally>
  /** The earliest expiry of a restored copy among the ready packs, if any (ISO time). */
  restoredUntil: string | null
}

function add(t: Tally, bytes: number): void {
  t.objects++
  t.bytes += bytes
}

/**
 * Checks which of `packs` (data pack id → size) are readable. Lists `data/` once for the classes the
 * listing reports, and asks the remote about each pack only when its class may need a restore, so a
 * repository whose packs are hot costs one listing.
 */
export async function checkRetrieval(
  repo: Repository,
  packs: ReadonlyMap<string, number>,
  o: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<RetrievalCheck> {
  const archive = repo.remote.archive
  const zero = (): Tally => ({ objects: 0, bytes: 0 })
  const check: RetrievalCheck = {
    archive: Boolean(archive), provider: archive?.provider ?? null, dataClass: archive?.dataClass ?? null,
    total: zero(), ready: zero(), pending: zero(), archived: zero(), missing: zero(),
    archivedNames: [], pendingNames: [], byClass: {}, archivedByClass: {}, restoredUntil: null,
  }
  for (const size of packs.values()) add(check.total, size)
  if (!archive) {
    check.ready = { ...check.total }
    return check
  }
  const listed = new Map<string, string | undefined>()
  for await (const info of repo.remote.list(DATA_PREFIX)) listed.set(info.name, info.storageClass)
  const entries = [...packs]
  let done = 0
  await forEachLimit(entries, o.concurrency ?? repo.remote.properties.maxConnections, async ([id, size]) => {
    const name = packObjectName('data', id)
    try {
      if (!listed.has(name)) {
        add(check.missing, size)
        return
      }
      const cls = listed.get(name)
      if (cls !== undefined && (cls === archive.hotClass || (cls === archive.dataClass && !archive.dataNeedsRestore))) {
        add(check.ready, size)
        add((check.byClass[cls] ??= zero()), size)
        return
      }
      let state
      try {
        state = await archive.state(name)
      } catch (err) {
        if (isNotFound(err)) {
          add(check.missing, size)
          return
        }
        throw err
      }
      add((check.byClass[state.storageClass] ??= zero()), size)
      if (state.readable) {
        add(check.ready, size)
        const until = state.restoredUntil?.toISOString()
        if (until && (check.restoredUntil === null || until < check.restoredUntil)) check.restoredUntil = until
      } else if (state.restore === 'in-progress') {
        add(check.pending, size)
        check.pendingNames.push(name)
      } else {
        add(check.archived, size)
        add((check.archivedByClass[state.storageClass] ??= zero()), size)
        check.archivedNames.push(name)
      }
    } finally {
      o.onProgress?.(++done, entries.length)
    }
  })
  check.archivedNames.sort()
  check.pendingNames.sort()
  return check
}

/**
 * True when reading data packs back may need a retrieval or cost more than a hot read: data packs go to a
 * class other than the hot one, or the listing shows data packs in another class (written before the
 * configuration changed). One listing at most; remotes without classes: false.
 */
export async function mayNeedRetrieval(repo: Repository): Promise<boolean> {
  const archive = repo.remote.archive
  if (!archive) return false
  if (archive.dataNeedsRestore || archive.dataClass !== archive.hotClass) return true
  for await (const info of repo.remote.list(DATA_PREFIX)) {
    if (info.storageClass !== undefined && info.storageClass !== archive.hotClass && info.storageClass !== archive.dataClass) return true
  }
  return false
}

/**
 * Requests retrieval of `names` (archived objects) with `tier`, keeping the restored copies `days` days.
 * Idempotent: objects already being retrieved are not requested twice (the remote resolves them).
 */
export async function requestRetrieval(
  repo: Repository,
  names: readonly string[],
  o: { tier: RetrievalTier; days: number; concurrency?: number; onProgress?: (done: number, total: number) => void },
): Promise<{ requested: number }> {
  const archive = repo.remote.archive
  if (!archive || names.length === 0) return { requested: 0 }
  let done = 0
  await forEachLimit(names, o.concurrency ?? repo.remote.properties.maxConnections, async (name) => {
    await archive.requestRestore(name, { tier: o.tier, days: o.days })
    o.onProgress?.(++done, names.length)
  })
  return { requested: names.length }
}
