/**
 * What a repository costs, from one listing of the remote and the snapshots' trees: stored bytes per
 * storage class and their monthly cost; per job, what its snapshots reference and the cost and time of a
 * full restore of its latest snapshot(s) per retrieval tier; the early-deletion fees prune would incur by
 * deleting packs younger than their class's minimum storage duration; and what removing some snapshots (a
 * retention change) would free and save.
 *
 * Prices come from a PriceTable (engine/cost), keyed by the remote's `archive.provider`; remotes without
 * storage classes (local disks, SFTP servers) are priced as provider `local`, which costs 0 unless the
 * user prices their own hardware under `prices: local:`.
 *
 * Pack ages: the listing carries no times, so a pack's age is counted from the oldest snapshot that
 * references it (a pack is written before the snapshot that first uses it, so the age is at most
 * underestimated and the fee over-, never under-estimated). Packs no snapshot references have no known
 * age and are charged the whole minimum (an upper bound), flagged `ageKnown: false`.
 */
import { NotFoundError, UsageError } from '../errors.js'
import { GB, classPrices, providerPrices, retrievalOptions, type PriceTable, type RetrievalOption } from '../cost/index.js'
import { packObjectName } from '../pack/index.js'
import { packKindOf, type Repository } from '../repo/index.js'
import { DATA_PREFIX } from '../remote/index.js'
import { planRestore } from '../restore/index.js'
import { listSnapshots, type Snapshot } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'

/** Days in the month the prices are per. */
export const DAYS_PER_MONTH = 30

/** Stored bytes of one storage class and what they cost a month. */
export interface ClassUsage {
  storageClass: string
  objects: number
  bytes: number
  /** Dollars per GB-month of the class, null when the price table has no price for it. */
  pricePerGBMonth: number | null
  monthlyUSD: number
}

/** A set of objects priced by class. */
export interface PricedSet {
  objects: number
  bytes: number
  monthlyUSD: number
  byClass: ClassUsage[]
}

/** Early-deletion (minimum storage duration) fees of deleting a set of packs now. */
export interface EarlyDeletion {
  /** Packs younger than their class's minimum, and their bytes. */
  packs: number
  bytes: number
  feeUSD: number
  /** False when some packs' ages are unknown (charged the whole minimum). */
  ageKnown: boolean
  byClass: { storageClass: string; packs: number; bytes: number; feeUSD: number; minDays: number }[]
}

/** One retrieval tier of a full restore, summed over the classes the packs are in. */
export interface RestoreTier {
  tier: RetrievalOption['tier']
  /** Typical hours until every pack is readable: [fastest, slowest] over the classes. */
  hours: [number, number]
  costUSD: number
  breakdown: RetrievalOption['breakdown']
}

/** A full restore of a job's latest snapshot(s). */
export interface RestoreEstimate {
  /** The snapshots restored: the newest of each host (and paths, for snapshots without a job). */
  snapshots: { id: string; time: string; host: string }[]
  files: number
  /** File bytes restored. */
  bytes: number
  /** Data packs read, and their stored bytes. */
  packs: { objects: number; bytes: number }
  byClass: Record<string, { objects: number; bytes: number }>
  /** One entry per tier available for every class involved (`instant` when nothing needs a retrieval). */
  tiers: RestoreTier[]
}

/** One job (or, for snapshots without a job, one host and set of paths). */
export interface JobCost {
  job: string | null
  /** For snapshots without a job: their host and paths. */
  host: string | null
  paths: string[] | null
  snapshots: number
  latestTime: string
  /** Packs the job's snapshots reference (packs shared with other jobs count for each). */
  referenced: PricedSet
  restore: RestoreEstimate
}

/** What removing `remove` would do. */
export interface RetentionSavings {
  remove: string[]
  /** Packs referenced only by removed snapshots: prune deletes them. */
  freed: PricedSet
  /** Packs referenced by removed and kept snapshots: freed only in part, by repacking. */
  shared: { objects: number; bytes: number }
  /** Fees of deleting the freed packs now. */
  earlyDeletion: EarlyDeletion
}

/** The cost report of one repository. */
export interface RepositoryCost {
  location: string
  /** Price table provider id (`aws-s3`, `gcs`, `local`...) and its label. */
  provider: string
  priceLabel: string
  /** True when the remote has storage classes (S3, GCS); false for local disks and SFTP. */
  storageClasses: boolean
  /** Everything stored, by class. */
  stored: PricedSet
  jobs: JobCost[]
  /** Packs no snapshot references (what prune would delete now), with their early-deletion fees. */
  unreferenced: { objects: number; bytes: number; earlyDeletion: EarlyDeletion }
  /** The retention change, when `remove` was given. */
  retention: RetentionSavings | null
  /** Things to know about the numbers (missing prices, unpriced providers...). */
  notes: string[]
  /** When the estimate was made (ISO). */
  time: string
}

/** Options of `estimateRepositoryCost`. */
export interface CostOptions {
  prices: PriceTable
  /** The clock: pack ages for early-deletion fees. */
  now: Date
  /**
   * Snapshot ids (full) a retention change would remove. The retention policy itself is evaluated by the
   * caller (the retention engine's `keep`/`remove` decision); null: no retention estimate.
   */
  remove?: readonly string[] | null
  /** Days restored copies of archived packs are kept in a restore estimate (default 7). */
  retrievalDays?: number
  onProgress?: (message: string) => void
}

interface Listed {
  size: number
  storageClass: string
}

/** Rounds dollars to nano-dollars: exact sums, no float noise (0.1 + 0.2). */
function usd(x: number): number {
  return Math.round(x * 1e9) / 1e9
}

/** The newest snapshot of each group (job and host; host and paths without a job). */
function groupKey(s: Snapshot): string {
  return s.job !== null ? `job\0${s.job}` : `host\0${s.host}\0${s.paths.join('\0')}`
}

/**
 * Estimates what the repository costs. Reads the listing of the whole remote once, every snapshot object,
 * and the trees of every snapshot (metadata packs are hot); reads no data pack.
 *
 * @throws UsageError when `remove` names a freeze (never forgotten); NotFoundError for an unknown id.
 */
export async function estimateRepositoryCost(repo: Repository, o: CostOptions): Promise<RepositoryCost> {
  const notes: string[] = []
  const archive = repo.remote.archive
  const provider = archive?.provider ?? 'local'
  const table = providerPrices(o.prices, provider)
  const nowMs = o.now.getTime()
  if (!archive) notes.push('no storage classes (a local disk or an SFTP server): priced as provider local, your own hardware (0 unless set under prices: local:)')

  // 1. One listing: every object, with its class.
  o.onProgress?.('listing the repository')
  const listed = new Map<string, Listed>()
  for await (const info of repo.remote.list('')) {
    const storageClass = info.storageClass ?? (archive ? (info.name.startsWith(DATA_PREFIX) ? archive.dataClass : archive.hotClass) : 'STANDARD')
    listed.set(info.name, { size: info.size, storageClass })
  }

  const unpriced = new Set<string>()
  const priceOf = (cls: string): { perGBMonth: number; minDays: number } | null => {
    try {
      const c = classPrices(table, cls, provider)
      return { perGBMonth: c.storagePerGBMonth, minDays: c.minDays }
    } catch {
      unpriced.add(cls)
      return null
    }
  }
  const price = (names: Iterable<string>): PricedSet => {
    const by = new Map<string, ClassUsage>()
    let objects = 0
    let bytes = 0
    for (const n of names) {
      const l = listed.get(n)
      if (!l) continue
      objects++
      bytes += l.size
      let c = by.get(l.storageClass)
      if (!c) by.set(l.storageClass, (c = { storageClass: l.storageClass, objects: 0, bytes: 0, pricePerGBMonth: priceOf(l.storageClass)?.perGBMonth ?? null, monthlyUSD: 0 }))
      c.objects++
      c.bytes += l.size
    }
    const byClass = [...by.values()].sort((a, b) => a.storageClass.localeCompare(b.storageClass))
    for (const c of byClass) c.monthlyUSD = usd(((c.pricePerGBMonth ?? 0) * c.bytes) / GB)
    return { objects, bytes, monthlyUSD: usd(byClass.reduce((s, c) => s + c.monthlyUSD, 0)), byClass }
  }
  const earlyDeletion = (names: Iterable<string>, firstSeen: ReadonlyMap<string, number>): EarlyDeletion => {
    const out: EarlyDeletion = { packs: 0, bytes: 0, feeUSD: 0, ageKnown: true, byClass: [] }
    const by = new Map<string, EarlyDeletion['byClass'][number]>()
    for (const n of names) {
      const l = listed.get(n)
      if (!l) continue
      const p = priceOf(l.storageClass)
      if (!p || p.minDays === 0) continue
      const seen = firstSeen.get(n)
      if (seen === undefined) out.ageKnown = false
      const ageDays = seen === undefined ? 0 : Math.max(0, (nowMs - seen) / 86_400_000)
      const remaining = p.minDays - ageDays
      if (remaining <= 0) continue
      const fee = ((l.size / GB) * p.perGBMonth * remaining) / DAYS_PER_MONTH
      let c = by.get(l.storageClass)
      if (!c) by.set(l.storageClass, (c = { storageClass: l.storageClass, packs: 0, bytes: 0, feeUSD: 0, minDays: p.minDays }))
      c.packs++
      c.bytes += l.size
      c.feeUSD += fee
      out.packs++
      out.bytes += l.size
    }
    out.byClass = [...by.values()].sort((a, b) => a.storageClass.localeCompare(b.storageClass))
    for (const c of out.byClass) c.feeUSD = usd(c.feeUSD)
    out.feeUSD = usd(out.byClass.reduce((s, c) => s + c.feeUSD, 0))
    return out
  }

  // 2. Snapshots, oldest first, and the packs each group references.
  o.onProgress?.('reading snapshots')
  const snapshots = await listSnapshots(repo)
  snapshots.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id))
  const byId = new Map(snapshots.map((s) => [s.id, s]))
  const trees = new TreeReader(repo)
  /** Adds the packs of `snaps` (oldest first) to `packs`, recording when each was first referenced; `visited` trees are skipped. */
  const collect = async (snaps: readonly Snapshot[], packs: Map<string, number>, visited: Set<string>): Promise<void> => {
    for (const s of snaps) {
      const t = Date.parse(s.time)
      const add = (id: string): void => {
        const loc = repo.lookup(id)
        if (!loc) return // reported by verify; a cost estimate goes on without it
        const name = packObjectName(packKindOf(loc.type), loc.packId)
        const prev = packs.get(name)
        if (prev === undefined || t < prev) packs.set(name, t)
      }
      const walk = async (treeId: string): Promise<void> => {
        if (visited.has(treeId)) return
        visited.add(treeId)
        add(treeId)
        for (const node of await trees.load(treeId)) {
          for (const c of node.chunks ?? []) add(c)
          if (node.type === 'dir' && node.subtree) await walk(node.subtree)
        }
      }
      await walk(s.tree)
    }
  }
  const all = new Map<string, number>()
  await collect(snapshots, all, new Set())

  // 3. Per job: referenced packs and a full restore of the latest snapshot(s).
  const groups = new Map<string, Snapshot[]>()
  for (const s of snapshots) {
    const k = s.job !== null ? `job\0${s.job}` : groupKey(s)
    let g = groups.get(k)
    if (!g) groups.set(k, (g = []))
    g.push(s)
  }
  const jobs: JobCost[] = []
  const days = o.retrievalDays ?? 7
  for (const list of groups.values()) {
    const first = list[0]
    o.onProgress?.(`job ${first.job ?? first.host}: planning a full restore`)
    const refs = new Map<string, number>()
    await collect(list, refs, new Set())
    const latest = new Map<string, Snapshot>()
    for (const s of list) latest.set(first.job !== null ? s.host : groupKey(s), s) // oldest first: the last one wins
    const dataPacks = new Map<string, number>()
    const restore: RestoreEstimate = { snapshots: [], files: 0, bytes: 0, packs: { objects: 0, bytes: 0 }, byClass: {}, tiers: [] }
    for (const s of latest.values()) {
      restore.snapshots.push({ id: s.id, time: s.time, host: s.host })
      const plan = await planRestore(repo, { snapshot: s, target: '/' })
      restore.files += plan.files
      restore.bytes += plan.bytes
      for (const [id, size] of plan.dataPacks) dataPacks.set(id, size)
    }
    for (const [id, size] of dataPacks) {
      const l = listed.get(packObjectName('data', id))
      const cls = l?.storageClass ?? archive?.dataClass ?? 'STANDARD'
      const bytes = l?.size ?? size
      restore.packs.objects++
      restore.packs.bytes += bytes
      const c = (restore.byClass[cls] ??= { objects: 0, bytes: 0 })
      c.objects++
      c.bytes += bytes
    }
    restore.tiers = restoreTiers(restore.byClass, { provider, prices: o.prices, days, unpriced })
    jobs.push({
      job: first.job, host: first.job === null ? first.host : null, paths: first.job === null ? first.paths : null,
      snapshots: list.length, latestTime: list[list.length - 1].time, referenced: price(refs.keys()), restore,
    })
  }

  // 4. Packs nothing references: what prune deletes now.
  const packNames = [...listed.keys()].filter((n) => n.startsWith('data/') || n.startsWith('meta/'))
  const orphans = packNames.filter((n) => !all.has(n))
  const orphanSet = price(orphans)
  const unreferenced = { objects: orphanSet.objects, bytes: orphanSet.bytes, earlyDeletion: earlyDeletion(orphans, new Map()) }

  // 5. A retention change.
  let retention: RetentionSavings | null = null
  if (o.remove) {
    const removeSet = new Set(o.remove)
    for (const id of removeSet) {
      const s = byId.get(id)
      if (!s) throw new NotFoundError(`snapshot ${id}`, `no snapshot ${id} in the repository`)
      if (s.kind === 'freeze') throw new UsageError(`snapshot ${id.slice(0, 8)} is a freeze: freezes are never forgotten`)
    }
    const kept = snapshots.filter((s) => !removeSet.has(s.id))
    const removed = snapshots.filter((s) => removeSet.has(s.id))
    const keptPacks = new Map<string, number>()
    const visited = new Set<string>()
    await collect(kept, keptPacks, visited)
    // Trees the kept snapshots reach are skipped: every pack below them stays.
    const removedPacks = new Map<string, number>()
    await collect(removed, removedPacks, visited)
    const freed = [...removedPacks.keys()].filter((n) => !keptPacks.has(n))
    // Shared: packs a removed snapshot references that kept ones reference too (walked without the skip).
    const removedAll = new Map<string, number>()
    await collect(removed, removedAll, new Set())
    const shared = [...removedAll.keys()].filter((n) => keptPacks.has(n))
    const sharedSet = price(shared)
    retention = {
      remove: [...removeSet].sort(),
      freed: price(freed),
      shared: { objects: sharedSet.objects, bytes: sharedSet.bytes },
      earlyDeletion: earlyDeletion(freed, all),
    }
  }

  for (const cls of [...unpriced].sort()) notes.push(`no price for storage class ${cls} of ${provider}: counted as 0; add it under prices: ${provider}: classes: in coldstore.yaml`)
  if (!unreferenced.earlyDeletion.ageKnown && unreferenced.earlyDeletion.packs > 0) {
    notes.push('the ages of unreferenced packs are unknown: their early-deletion fees assume they were just written (an upper bound)')
  }
  return {
    location: repo.remote.properties.location, provider, priceLabel: table.label, storageClasses: Boolean(archive),
    stored: price(listed.keys()), jobs, unreferenced, retention, notes, time: o.now.toISOString(),
  }
}

/**
 * Sums retrieval options over classes per tier. A tier is offered when every class can be read with it:
 * classes read at once (`instant`) join every tier; an archive class without that tier (Deep Archive has
 * no Expedited) rules it out.
 */
function restoreTiers(
  byClass: Record<string, { objects: number; bytes: number }>,
  o: { provider: string; prices: PriceTable; days: number; unpriced: Set<string> },
): RestoreTier[] {
  const perClass: RetrievalOption[][] = []
  for (const [cls, t] of Object.entries(byClass)) {
    try {
      perClass.push(retrievalOptions({ provider: o.provider, storageClass: cls, objects: t.objects, bytes: t.bytes, days: o.days, prices: o.prices }))
    } catch {
      o.unpriced.add(cls)
    }
  }
  if (perClass.length === 0) return []
  const archived = perClass.filter((opts) => !(opts.length === 1 && opts[0].tier === 'instant'))
  const instant = perClass.filter((opts) => opts.length === 1 && opts[0].tier === 'instant').map((opts) => opts[0])
  const names: RetrievalOption['tier'][] = archived.length === 0 ? ['instant'] : ['Expedited', 'Standard', 'Bulk'].filter((tier) => archived.every((opts) => opts.some((x) => x.tier === tier))) as RetrievalOption['tier'][]
  const round = (x: number): number => Math.round(x * 100) / 100
  return names.map((tier) => {
    const parts = [...instant, ...archived.map((opts) => opts.find((x) => x.tier === tier) as RetrievalOption)]
    const b = { retrieval: 0, requests: 0, reads: 0, egress: 0, restoredCopy: 0 }
    let hours: [number, number] = [0, 0]
    for (const p of parts) {
      for (const k of Object.keys(b) as (keyof typeof b)[]) b[k] = round(b[k] + p.breakdown[k])
      hours = [Math.max(hours[0], p.hours[0]), Math.max(hours[1], p.hours[1])]
    }
    return { tier, hours, costUSD: round(parts.reduce((s, p) => s + p.costUSD, 0)), breakdown: b }
  })
}
