import { IntegrityError, LockedError, isNotFound } from '../errors.js'
import { isLockLive, listLocks, listPrunePlans, RepoSession, writePrunePlan, LOCK_STALE_MS, type StoredLock, type StoredPrunePlan } from '../gc/index.js'
import type { IndexedPack } from '../index/index.js'
import { NULL_SINK, PackWriter, packObjectName, type PackEntry, type PackKind, type SealedPack } from '../pack/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import type { ObjectWriter } from '../remote/index.js'
import { listSnapshots, type Snapshot } from '../snapshot/index.js'
import { decodeTree } from '../tree/index.js'

/** Default safety delay: a marked pack is deleted by a run at least this long after the one that marked it. */
export const DEFAULT_SAFETY_DELAY_MS = 60 * 60_000
/** Default repack threshold: a pack whose unused part is more than this fraction of its size is repacked. */
export const DEFAULT_REPACK_THRESHOLD = 0.1
/** Index objects hold at most this many packs. */
const PACKS_PER_INDEX_OBJECT = 20_000
/** More index objects than this are compacted even when nothing else changes. */
const COMPACT_ABOVE_OBJECTS = 32

const PACK_NAME = /^(data|meta)\/[0-9a-f]{2}\/([0-9a-f]{64})$/

export interface PruneOptions {
  /** The clock (plan times, the safety delay, lock staleness). */
  now: () => Date
  /** Default 1 h (DEFAULT_SAFETY_DELAY_MS). 0: a second pass in the same run deletes what the first one marked. */
  safetyDelayMs?: number
  /** Fraction (0–1) of unused bytes above which a pack is repacked; 1 or more never repacks. Default 0.1. */
  repackThreshold?: number
  /** Compute and report everything, change nothing. */
  dryRun?: boolean
  host: string
  username: string
  program: string
  /** A lock not refreshed for this long is taken as dead (default LOCK_STALE_MS, 1 h). */
  staleAfterMs?: number
  onProgress?: (p: { phase: PrunePhase; done: number; total: number }) => void
  /**
   * Called once everything is decided, before anything is changed (not in a dry run), when this run will
   * delete packs (those of due plans; with delay 0 also what it marks and repacks): resolve false to stop
   * without changes.
   */
  approve?: (preview: PrunePreview) => Promise<boolean>
}

export type PrunePhase = 'index' | 'snapshots' | 'repack' | 'delete'

/** Counts of packs, their bytes and the blobs they hold. */
export interface PackCount {
  packs: number
  bytes: number
  blobs: number
}

/** What a run is about to do (PruneOptions.approve). */
export interface PrunePreview {
  /** Packs of due plans this run deletes. */
  delete: PackCount
  /** Packs whose used blobs are copied now (the old packs are deleted by a later sweep). */
  repack: PackCount
  /** Packs marked for a later sweep. */
  mark: PackCount
  /** Safety delay 0: what is marked (and repacked) is deleted by this run too. */
  immediate: boolean
}

export interface SweptPlan {
  plan: string
  marked: string
  /** Packs of the plan deleted now. */
  deleted: PackCount
  /** Packs of the plan kept because a snapshot made since needs them (indexed again when they were not). */
  kept: number
  /** Packs kept because the remote protects them or a freeze needs them (never deleted). */
  protected: number
}

export interface DeferredPlan {
  plan: string
  marked: string
  /** `not_due`: the safety delay has not passed; `writers`: writers that started before the plan are still running. */
  reason: 'not_due' | 'writers'
  /** When the safety delay has passed (not_due). */
  deletable_after: string
  writers: { operation: string; host: string; username: string; started: string }[]
}

export interface MarkedPlan {
  plan: string | null
  time: string
  deletable_after: string
  /** Packs no snapshot needs, to delete after the delay. */
  delete: PackCount
  /** Packs whose used blobs were copied into new packs now; the old ones are deleted after the delay. */
  repacked: PackCount
  /** What the copies wrote. */
  written: PackCount
}

export interface PruneReport {
  dry_run: boolean
  /** True when `approve` declined: nothing was changed. */
  aborted: boolean
  swept: SweptPlan[]
  deferred: DeferredPlan[]
  marked: MarkedPlan | null
  /** What this run deleted (packs of swept plans). */
  freed: PackCount
  index: { objects_before: number; objects_after: number; written: number; removed: number }
  /** Packs that freezes need or the remote protects: never deleted or repacked. */
  pinned_packs: number
  /** Packs that no index object named and that snapshots need: indexed again. */
  reindexed_packs: number
  /** Data packs in an archive storage class that were not repacked (reading them needs a restore). */
  archived_not_repacked: number
  /** Stale lock objects (owner dead) removed. */
  stale_locks_removed: number
  snapshots: number
  referenced_blobs: number
}

interface PackInfo {
  name: string
  packId: string
  kind: PackKind
  size: number
  entries: PackEntry[]
  indexed: boolean
}

interface State {
  /** Packs on the remote (listed), with their entries (from the index, a plan, or the header). */
  packs: Map<string, PackInfo>
  /** Index records of packs the index names but the listing lacks (kept as they are). */
  missing: IndexedPack[]
  /** Blob id → names of existing packs holding it. */
  holders: Map<string, string[]>
  indexNames: string[]
  protectedIndexNames: Set<string>
  pinned: Set<string>
}

const zero = (): PackCount => ({ packs: 0, bytes: 0, blobs: 0 })
const add = (c: PackCount, p: { size: number; entries: readonly unknown[] }): void => { c.packs++; c.bytes += p.size; c.blobs += p.entries.length }

/**
 * Removes data no snapshot needs, safely while other hosts write (lock-free, two-phase; FORMAT.md "Locks
 * and prune plans"):
 *
 * - **sweep**: plans made at least the safety delay ago are carried out, unless a writer that started
 *   before the plan is still running (its lock is live and does not list the plan): their packs that no
 *   snapshot needs now are deleted; packs a snapshot made since needs are kept (and indexed again);
 * - **mark**: packs no snapshot needs are recorded in a new plan, and packs with more unused bytes than the
 *   threshold are repacked (their used blobs copied into new packs, the index rewritten without the old
 *   ones, which the plan lists for a later sweep). Index objects are compacted when anything changes.
 *
 * Never deleted or repacked: packs holding any blob of a freeze, objects the remote protects, packs named by
 * index objects the remote protects. One prune runs at a time (LockedError); backups never wait for it.
 * Refuses to run (IntegrityError) when a snapshot needs a blob no pack holds: run verify.
 */
export async function prune(repo: Repository, o: PruneOptions): Promise<PruneReport> {
  const delay = o.safetyDelayMs ?? DEFAULT_SAFETY_DELAY_MS
  const session = o.dryRun ? null : await RepoSession.start(repo, { kind: 'prune', operation: 'prune', host: o.host, username: o.username, program: o.program, clock: o.now })
  try {
    const others = (await listLocks(repo)).filter((l) => l.doc.kind === 'prune' && l.name !== session?.name && isLockLive(l, { now: o.now(), staleAfterMs: o.staleAfterMs }))
    if (others.length) {
      const h = others[0].doc
      throw new LockedError(`${h.host} (${h.username}, pid ${h.pid})`, `another prune is running (on ${h.host}, by ${h.username}, pid ${h.pid}, since ${h.started}): try again when it is done`)
    }
    const first = await pruneOnce(repo, o, delay)
    if (delay > 0 || !first.marked || first.aborted) return first
    if (o.dryRun || !first.marked.plan) {
      // In a dry run the plan is not written: count what the second pass would delete (with no writer in the way).
      const m = first.marked
      return { ...first, freed: { packs: first.freed.packs + m.delete.packs + m.repacked.packs, bytes: first.freed.bytes + m.delete.bytes + m.repacked.bytes, blobs: first.freed.blobs + m.delete.blobs + m.repacked.blobs } }
    }
    // Safety delay 0: carry out the plan just made, with a fresh look at locks and snapshots.
    const second = await pruneOnce(repo, { ...o, approve: undefined }, 0, first.marked.plan)
    return {
      ...first,
      swept: [...first.swept, ...second.swept],
      deferred: [...first.deferred, ...second.deferred],
      freed: { packs: first.freed.packs + second.freed.packs, bytes: first.freed.bytes + second.freed.bytes, blobs: first.freed.blobs + second.freed.blobs },
      index: { ...first.index, objects_after: second.index.objects_after, written: first.index.written + second.index.written, removed: first.index.removed + second.index.removed },
      reindexed_packs: first.reindexed_packs + second.reindexed_packs,
      stale_locks_removed: first.stale_locks_removed + second.stale_locks_removed,
    }
  } finally {
    await session?.end()
  }
}

async function pruneOnce(repo: Repository, o: PruneOptions, delay: number, onlyPlan?: string): Promise<PruneReport> {
  const now = o.now()
  const progress = o.onProgress ?? (() => undefined)
  const threshold = o.repackThreshold ?? DEFAULT_REPACK_THRESHOLD
  const report: PruneReport = {
    dry_run: o.dryRun === true, aborted: false, swept: [], deferred: [], marked: null, freed: zero(),
    index: { objects_before: 0, objects_after: 0, written: 0, removed: 0 }, pinned_packs: 0, reindexed_packs: 0,
    archived_not_repacked: 0, stale_locks_removed: 0, snapshots: 0, referenced_blobs: 0,
  }

  // Locks before snapshots: a writer whose lock is gone by now wrote its snapshot before the listing below.
  const locks = await listLocks(repo)
  const plans = await listPrunePlans(repo)
  await repo.syncIndex()
  const snapshots = await listSnapshots(repo, (id, err) => {
    throw new IntegrityError(`snapshot ${id} cannot be read (${(err as Error).message}): prune needs every snapshot; run coldstore verify`, {}, { cause: err })
  })
  report.snapshots = snapshots.length
  const state = await loadState(repo, plans, progress)
  report.index.objects_before = state.indexNames.length
  const refs = await referencedBlobs(repo, snapshots, progress)
  report.referenced_blobs = refs.all.size
  for (const id of refs.all) {
    if (!(state.holders.get(id) ?? []).length) throw new IntegrityError(`blob ${id} is needed by a snapshot but no pack holds it: prune changes nothing in a damaged repository; run coldstore verify`, { blobId: id })
  }
  // Everything a freeze needs, in whichever pack it is, and what the remote protects, stays.
  for (const id of refs.frozen) for (const p of state.holders.get(id) ?? []) state.pinned.add(p)

  // 1. Sweep the plans that are due.
  const gone = new Set<string>() // packs deleted by this run
  const reindex = new Map<string, PackInfo>()
  const sweptPlans: StoredPrunePlan[] = []
  const pending = new Set<string>() // packs in plans left for later
  for (const plan of plans) {
    const marked = Date.parse(plan.doc.time)
    const deletableAfter = new Date(marked + delay).toISOString()
    if ((onlyPlan && plan.id !== onlyPlan) || marked + delay > now.getTime()) {
      if (!onlyPlan || plan.id === onlyPlan) report.deferred.push({ plan: plan.id, marked: plan.doc.time, reason: 'not_due', deletable_after: deletableAfter, writers: [] })
      for (const n of [...plan.doc.delete, ...plan.doc.repacked]) pending.add(n)
      continue
    }
    const blocking = blockingWriters(locks, plan, now, o.staleAfterMs)
    if (blocking.length) {
      report.deferred.push({
        plan: plan.id, marked: plan.doc.time, reason: 'writers', deletable_after: deletableAfter,
        writers: blocking.map((l) => ({ operation: l.doc.operation, host: l.doc.host, username: l.doc.username, started: l.doc.started })),
      })
      for (const n of [...plan.doc.delete, ...plan.doc.repacked]) pending.add(n)
      continue
    }
    const cands = new Set([...plan.doc.delete, ...plan.doc.repacked].filter((n) => state.packs.has(n) && !gone.has(n)))
    const swept: SweptPlan = { plan: plan.id, marked: plan.doc.time, deleted: zero(), kept: 0, protected: 0 }
    const usable = (n: string): boolean => !cands.has(n) && !gone.has(n) && state.packs.has(n)
    for (const id of refs.all) {
      const hs = state.holders.get(id) ?? []
      if (hs.some(usable)) continue
      // Needed again since the plan was made: keep a pack holding it (an indexed one if there is one).
      const keepName = hs.filter((h) => cands.has(h)).sort((a, b) => Number(state.packs.get(b)!.indexed) - Number(state.packs.get(a)!.indexed) || (a < b ? -1 : 1))[0]
      if (!keepName) continue // held only by a pack this run deleted already: cannot happen (that plan kept it)
      cands.delete(keepName)
      swept.kept++
      const p = state.packs.get(keepName)!
      if (!p.indexed) reindex.set(keepName, p)
    }
    for (const n of [...cands]) {
      if (state.pinned.has(n) || (await isProtected(repo, n))) {
        cands.delete(n)
        swept.protected++
        const p = state.packs.get(n)!
        if (!p.indexed) reindex.set(n, p)
      }
    }
    for (const n of cands) {
      gone.add(n)
      add(swept.deleted, state.packs.get(n)!)
    }
    report.swept.push(swept)
    sweptPlans.push(plan)
  }

  // 2. Mark: which copy of each needed blob is the live one; packs without live blobs go, mostly unused ones are repacked.
  const live = new Map<string, Set<string>>()
  for (const id of refs.all) {
    const hs = (state.holders.get(id) ?? []).filter((h) => !gone.has(h))
    const pick = [...hs].sort((a, b) => rank(state, pending, b) - rank(state, pending, a) || (a < b ? -1 : 1))[0]
    let s = live.get(pick)
    if (!s) live.set(pick, (s = new Set()))
    s.add(id)
  }
  const toDelete: PackInfo[] = []
  const toRepack: PackInfo[] = []
  const archive = repo.remote.archive
  for (const p of [...state.packs.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (gone.has(p.name) || pending.has(p.name) || state.pinned.has(p.name)) continue
    const l = live.get(p.name)
    if (!l || l.size === 0) {
      if (!(await isProtected(repo, p.name))) toDelete.push(p)
      continue
    }
    if (!p.indexed) {
      reindex.set(p.name, p)
      continue
    }
    if (threshold >= 1) continue
    let unused = 0
    for (const e of p.entries) if (!l.has(e.id)) unused += e.length
    if (unused / p.size <= threshold) continue
    if (archive?.dataNeedsRestore && p.kind === 'data') {
      report.archived_not_repacked++
      continue
    }
    if (await isProtected(repo, p.name)) continue
    toRepack.push(p)
  }
  report.pinned_packs = [...state.pinned].filter((n) => state.packs.has(n)).length
  report.reindexed_packs = reindex.size

  if (onlyPlan !== undefined) {
    // The second pass of a zero delay: carries out that plan only, marks nothing new.
    toDelete.length = 0
    toRepack.length = 0
  }
  const preview: PrunePreview = { delete: zero(), repack: zero(), mark: zero(), immediate: delay === 0 }
  for (const s of report.swept) { preview.delete.packs += s.deleted.packs; preview.delete.bytes += s.deleted.bytes; preview.delete.blobs += s.deleted.blobs }
  for (const p of toRepack) add(preview.repack, p)
  for (const p of toDelete) add(preview.mark, p)
  // Repacking copies and deletes nothing yet: only deletions (now, or at once with delay 0) are confirmed.
  const deletes = preview.delete.packs > 0 || (preview.immediate && (preview.mark.packs > 0 || preview.repack.packs > 0))
  if (!o.dryRun && o.approve && deletes && !(await o.approve(preview))) {
    report.aborted = true
    report.swept = []
    return report
  }

  // 3. Repack: copy the live blobs of mostly unused packs into new packs.
  const written = await repack(repo, toRepack, live, o.dryRun === true, progress)

  // 4. The index: every pack still there (minus what this run deletes and repacks), plus re-indexed and new packs.
  const repacked = new Set(toRepack.map((p) => p.name))
  const changed = gone.size > 0 || repacked.size > 0 || reindex.size > 0 || state.indexNames.length > COMPACT_ABOVE_OBJECTS
  const finalPacks: IndexedPack[] = [...state.missing]
  for (const p of state.packs.values()) {
    if (gone.has(p.name) || repacked.has(p.name)) continue
    if (p.indexed || reindex.has(p.name)) finalPacks.push({ packId: p.packId, kind: p.kind, size: p.size, entries: p.entries })
  }
  for (const w of written.packs) finalPacks.push({ packId: w.id, kind: w.kind, size: w.size, entries: w.entries })
  finalPacks.sort((a, b) => (a.packId < b.packId ? -1 : a.packId > b.packId ? 1 : 0))
  let objectsAfter = state.indexNames.length
  if (changed) {
    const oldNames = state.indexNames.filter((n) => !state.protectedIndexNames.has(n))
    const count = Math.ceil(finalPacks.length / PACKS_PER_INDEX_OBJECT)
    report.index.written = count
    report.index.removed = oldNames.length
    objectsAfter = state.indexNames.length - oldNames.length + count
    if (!o.dryRun) {
      const newNames: string[] = []
      for (let i = 0; i < finalPacks.length; i += PACKS_PER_INDEX_OBJECT) newNames.push(await repo.writeIndexObject(finalPacks.slice(i, i + PACKS_PER_INDEX_OBJECT)))
      repo.cache.clearPending(written.packs.map((w) => w.id))
      let done = 0
      for (const n of oldNames) {
        if (!newNames.includes(n)) await repo.remote.delete(n) // the same content, the same name: that one stays
        progress({ phase: 'index', done: ++done, total: oldNames.length })
      }
    }
  }
  report.index.objects_after = objectsAfter

  // 5. The new plan (after the index no longer names the repacked packs: a writer that reads the plan syncs after).
  if (toDelete.length || toRepack.length) {
    const packsOfPlan = [...toDelete, ...toRepack].map((p) => ({ packId: p.packId, kind: p.kind, size: p.size, entries: p.entries }))
    const m: MarkedPlan = { plan: null, time: now.toISOString(), deletable_after: new Date(now.getTime() + delay).toISOString(), delete: zero(), repacked: zero(), written: written.count }
    for (const p of toDelete) add(m.delete, p)
    for (const p of toRepack) add(m.repacked, p)
    if (!o.dryRun) {
      const plan = await writePrunePlan(repo, {
        version: 1, time: now.toISOString(), host: o.host, username: o.username, program: o.program, safety_delay_s: Math.round(delay / 1000),
        locks: locks.map((l) => l.name), delete: toDelete.map((p) => p.name), repacked: toRepack.map((p) => p.name),
      }, packsOfPlan)
      m.plan = plan.id
    }
    report.marked = m
  }

  // 6. Delete what the swept plans marked and no one needs, then the plans.
  if (!o.dryRun) {
    let done = 0
    const names = [...gone]
    for (const n of names) {
      // Asked again right before: a remote that protects an object refuses, and must not be asked.
      if (!(await isProtected(repo, n))) await repo.remote.delete(n)
      progress({ phase: 'delete', done: ++done, total: names.length })
    }
    for (const p of sweptPlans) await repo.remote.delete(p.name)
    // Locks dead by both rules (not refreshed since a swept plan recorded them, and stale by the clock).
    const recorded = new Set(sweptPlans.flatMap((p) => p.doc.locks))
    for (const l of locks) {
      if (l.doc.kind === 'writer' && recorded.has(l.name) && !isLockLive(l, { now, staleAfterMs: o.staleAfterMs })) {
        await repo.remote.delete(l.name)
        report.stale_locks_removed++
      }
    }
  }
  for (const n of gone) add(report.freed, state.packs.get(n)!)
  return report
}

/** Writers whose lock is live and that did not read `plan` before they started: they may reuse what it marked. */
function blockingWriters(locks: readonly StoredLock[], plan: StoredPrunePlan, now: Date, staleAfterMs?: number): StoredLock[] {
  const earlier = new Set(plan.doc.locks)
  return locks.filter((l) => l.doc.kind === 'writer' && !l.doc.plans_seen.includes(plan.id) && isLockLive(l, { now, staleAfterMs: staleAfterMs ?? LOCK_STALE_MS, seenEarlier: earlier }))
}

/** Which copy of a blob is the live one: in a pack a freeze needs, then an indexed one, then one no pending plan names. */
function rank(state: State, pending: ReadonlySet<string>, name: string): number {
  return (state.pinned.has(name) ? 4 : 0) + (state.packs.get(name)?.indexed ? 2 : 0) + (pending.has(name) ? 0 : 1)
}

async function isProtected(repo: Repository, name: string): Promise<boolean> {
  return (await repo.remote.protection?.isProtected(name)) ?? false
}

/** Lists packs and index objects; the entries of packs no index names come from plans or their headers. */
async function loadState(repo: Repository, plans: readonly StoredPrunePlan[], progress: NonNullable<PruneOptions['onProgress']>): Promise<State> {
  const listed = new Map<string, number>()
  for (const kind of ['data', 'meta'] as const) {
    for await (const obj of repo.remote.list(`${kind}/`)) if (PACK_NAME.test(obj.name)) listed.set(obj.name, obj.size)
  }
  const indexNames: string[] = []
  for await (const obj of repo.remote.list('index/')) if (/^index\/[0-9a-f]{64}$/.test(obj.name)) indexNames.push(obj.name)
  indexNames.sort()
  const indexed = new Map<string, IndexedPack>()
  const protectedIndexNames = new Set<string>()
  const pinned = new Set<string>()
  let done = 0
  await forEachLimit(indexNames, repo.remote.properties.maxConnections, async (name) => {
    let packs: IndexedPack[]
    try {
      packs = await repo.loadIndexObject(name)
    } catch (err) {
      if (isNotFound(err)) return
      throw new IntegrityError(`${name} cannot be read (${(err as Error).message}): prune changes nothing in a damaged repository; run coldstore verify, then coldstore repair index`, {}, { cause: err })
    }
    const locked = await isProtected(repo, name)
    if (locked) protectedIndexNames.add(name)
    for (const p of packs) {
      const n = packObjectName(p.kind, p.packId)
      if (!indexed.has(n)) indexed.set(n, p)
      if (locked) pinned.add(n) // a locked index object keeps naming it: deleting it would leave a dangling record
    }
    progress({ phase: 'index', done: ++done, total: indexNames.length })
  })
  const fromPlans = new Map<string, IndexedPack>()
  for (const pl of plans) for (const p of pl.packs) fromPlans.set(packObjectName(p.kind, p.packId), p)
  const packs = new Map<string, PackInfo>()
  const missing: IndexedPack[] = []
  for (const [n, p] of indexed) {
    const size = listed.get(n)
    if (size === undefined) missing.push(p)
    else packs.set(n, { name: n, packId: p.packId, kind: p.kind, size, entries: p.entries, indexed: true })
  }
  const unindexed = [...listed].filter(([n]) => !indexed.has(n))
  await forEachLimit(unindexed, repo.remote.properties.maxConnections, async ([n, size]) => {
    const m = PACK_NAME.exec(n)!
    const kind = m[1] as PackKind
    const packId = m[2]
    let entries: PackEntry[] = fromPlans.get(n)?.entries ?? []
    if (!fromPlans.has(n)) {
      try {
        entries = await repo.readPackHeader(kind, packId, size)
      } catch {
        entries = [] // unreadable header: nothing in it can be used; deleted like any unneeded pack
      }
    }
    packs.set(n, { name: n, packId, kind, size, entries, indexed: false })
  })
  const holders = new Map<string, string[]>()
  for (const p of packs.values()) {
    for (const e of p.entries) {
      const h = holders.get(e.id)
      if (h) { if (!h.includes(p.name)) h.push(p.name) } else holders.set(e.id, [p.name])
    }
  }
  return { packs, missing, holders, indexNames, protectedIndexNames, pinned }
}

/** Every blob (trees and chunks) any snapshot needs, and those freezes need. Each tree is read once. */
async function referencedBlobs(repo: Repository, snapshots: readonly Snapshot[], progress: NonNullable<PruneOptions['onProgress']>): Promise<{ all: Set<string>; frozen: Set<string> }> {
  const walk = async (roots: string[], into: Set<string>): Promise<void> => {
    let frontier = roots.filter((r) => !into.has(r))
    for (const r of frontier) into.add(r)
    while (frontier.length) {
      const next: string[] = []
      await forEachLimit(frontier, repo.remote.properties.maxConnections, async (id) => {
        let plain: Buffer
        try {
          plain = await repo.loadBlob(id)
        } catch (err) {
          throw new IntegrityError(`tree ${id} cannot be read (${(err as Error).message}): prune changes nothing in a damaged repository; run coldstore verify`, { blobId: id }, { cause: err })
        }
        for (const n of decodeTree(plain)) {
          if (n.type === 'dir' && n.subtree && !into.has(n.subtree)) {
            into.add(n.subtree)
            next.push(n.subtree)
          }
          for (const c of n.chunks ?? []) into.add(c)
        }
      })
      progress({ phase: 'snapshots', done: into.size, total: 0 })
      frontier = next
    }
  }
  const all = new Set<string>()
  const frozen = new Set<string>()
  await walk(snapshots.map((s) => s.tree), all)
  await walk(snapshots.filter((s) => s.kind === 'freeze').map((s) => s.tree), frozen)
  return { all, frozen }
}

/** Copies the live blobs of `sources` into new packs (counted only, in a dry run); each blob is checked against its id first. */
async function repack(
  repo: Repository, sources: readonly PackInfo[], live: Map<string, Set<string>>, dryRun: boolean, progress: NonNullable<PruneOptions['onProgress']>,
): Promise<{ packs: SealedPack[]; count: PackCount }> {
  const count = zero()
  const out: SealedPack[] = []
  const copied = new Set<string>()
  const writers: Partial<Record<PackKind, { writer: PackWriter; object: ObjectWriter | null }>> = {}
  const finish = async (kind: PackKind): Promise<void> => {
    const w = writers[kind]
    delete writers[kind]
    if (!w || w.writer.count === 0) {
      await w?.object?.abort()
      return
    }
    const sealed = await w.writer.finish(repo.sealer)
    if (w.object) await repo.savePack(w.object, sealed)
    out.push(sealed)
    add(count, sealed)
  }
  const open = (kind: PackKind): { writer: PackWriter; object: ObjectWriter | null } => {
    let w = writers[kind]
    if (!w) {
      if (dryRun) w = { writer: new PackWriter(kind, repo.config.pack_size_bytes, NULL_SINK), object: null }
      else w = repo.newPackWriter(kind)
      writers[kind] = w
    }
    return w
  }
  try {
    let done = 0
    for (const p of sources) {
      const keep = live.get(p.name) ?? new Set<string>()
      const entries = p.entries.filter((e) => keep.has(e.id) && !copied.has(e.id)).sort((a, b) => a.offset - b.offset)
      for (const e of entries) {
        const sealed = await repo.remote.get(p.name, { offset: e.offset, length: e.length })
        repo.decodeAndCheck(sealed, e.id, { packId: p.packId, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength })
        let w = open(p.kind)
        if (w.writer.wouldOverflow(sealed.length)) {
          await finish(p.kind)
          w = open(p.kind)
        }
        await w.writer.add(e.id, e.type, { sealed, compression: e.compression, rawLength: e.rawLength })
        copied.add(e.id)
        if (w.writer.full) await finish(p.kind)
      }
      progress({ phase: 'repack', done: ++done, total: sources.length })
    }
    await finish('data')
    await finish('meta')
  } catch (err) {
    for (const k of ['data', 'meta'] as const) await writers[k]?.object?.abort().catch(() => undefined)
    throw err
  }
  return { packs: out, count }
}
