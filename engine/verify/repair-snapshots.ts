import { ArchivedError, FormatError, IntegrityError, isNotFound } from '../errors.js'
import { BlobEncoder, type PackWriter } from '../pack/index.js'
import type { ObjectWriter } from '../remote/index.js'
import type { Repository } from '../repo/index.js'
import { listSnapshots, saveSnapshot, type Snapshot, type SnapshotDoc, type SnapshotRepair, type SnapshotRepairExclusion } from '../snapshot/index.js'
import { decodeTree, encodeTree, isUtf8, type TreeNode } from '../tree/index.js'

/** Excluded entries recorded per repaired snapshot object at most (the count is always exact). */
export const MAX_RECORDED_EXCLUSIONS = 1000

/** Tag every repaired snapshot carries (besides the tags of the snapshot it repairs). */
export const REPAIRED_TAG = 'repaired'

export interface RepairSnapshotsOptions {
  /** The snapshots to check and repair (default: every snapshot in the repository). */
  snapshots?: readonly Snapshot[]
  /** Check and report, write nothing. */
  dryRun?: boolean
  hostname: string
  username: string
  program: string
  now: () => Date
  onProgress?: (p: { phase: 'check'; snapshots: number; total: number; blobs: number }) => void
}

/** What `repairSnapshots` did with one snapshot. */
export interface SnapshotRepairReport {
  id: string
  /**
   * `intact`: everything it names reads back; `repaired`: a new snapshot without the unreadable entries was
   * written (or, in a dry run, would be); `already_repaired`: such a snapshot exists already (same tree);
   * `unrepairable`: its root folder listing cannot be read, so there is nothing to keep.
   */
  state: 'intact' | 'repaired' | 'already_repaired' | 'unrepairable'
  /** The repaired snapshot (null when intact or unrepairable, and in a dry run unless it exists already). */
  repairedId: string | null
  /** Entries left out, in walk order (at most MAX_RECORDED_EXCLUSIONS; `excludedCount` is exact). */
  excluded: SnapshotRepairExclusion[]
  excludedCount: number
  /** Files and bytes the repaired snapshot keeps (of the original's). */
  files: number
  bytes: number
}

export interface RepairSnapshotsResult {
  dryRun: boolean
  snapshots: SnapshotRepairReport[]
  /** Snapshots whose object itself cannot be read (when checking all): nothing to repair them from. */
  damagedObjects: string[]
  /** Blobs checked (read and authenticated), file chunks and trees. */
  blobsChecked: number
  /** New folder listings (trees) written, and the bytes of packs and index objects written for them. */
  treesWritten: number
  bytesWritten: number
}

/** Why a blob cannot be used, or null when it reads back intact. */
type BlobProblem = 'missing_blob' | 'damaged_blob' | null

/** Checks at most this many blobs at once. */
const CHECK_CONCURRENCY = 16

/**
 * Writes, for every snapshot that names data which cannot be read back, a new snapshot that leaves out
 * the unreadable entries: files with a missing or damaged chunk, and folders whose listing (tree) is
 * missing or damaged. The snapshot it repairs is never modified or deleted. The new one keeps the
 * original's time, host, paths, job, kind and metadata, adds the tag `repaired`, and records in
 * `repaired` which snapshot it replaces and what was left out (FORMAT.md).
 *
 * Every file chunk and tree the snapshots name is read and authenticated (as a restore would), so a
 * damaged blob in a pack of the right size is found too. A blob that cannot be read for other reasons
 * (a remote error, data in archive storage) stops the repair with that error: only what is known to be
 * lost is left out. Use after `repair index` when packs or index objects were damaged.
 */
export async function repairSnapshots(repo: Repository, o: RepairSnapshotsOptions): Promise<RepairSnapshotsResult> {
  const damagedObjects: string[] = []
  // Read from the remote, not the local cache of snapshot objects: the repair checks what is stored.
  const all = await listSnapshots(repo, (id) => damagedObjects.push(id), { fresh: true })
  const targets = o.snapshots ?? all
  // Existing repairs, so running twice does not write a second copy.
  const repairsOf = new Map<string, Snapshot[]>()
  for (const s of all) {
    if (s.repaired?.original) repairsOf.set(s.repaired.original, [...(repairsOf.get(s.repaired.original) ?? []), s])
  }
  const checker = new BlobChecker(repo)
  const newTrees = new Map<string, Buffer>()
  const reports: SnapshotRepairReport[] = []
  const roots = new Map<string, string>()
  let done = 0
  for (const s of targets) {
    const r = await rebuildSnapshot(repo, checker, s, newTrees)
    o.onProgress?.({ phase: 'check', snapshots: ++done, total: targets.length, blobs: checker.checked })
    if (r.rootId === null) {
      reports.push({ id: s.id, state: 'unrepairable', repairedId: null, excluded: r.excluded.slice(0, MAX_RECORDED_EXCLUSIONS), excludedCount: r.excluded.length, files: 0, bytes: 0 })
      continue
    }
    roots.set(s.id, r.rootId)
    if (r.excluded.length === 0) {
      reports.push({ id: s.id, state: 'intact', repairedId: null, excluded: [], excludedCount: 0, files: r.files, bytes: r.bytes })
      continue
    }
    const existing = (repairsOf.get(s.id) ?? []).find((x) => x.tree === r.rootId)
    reports.push({
      id: s.id, state: existing ? 'already_repaired' : 'repaired', repairedId: existing?.id ?? null,
      excluded: r.excluded.slice(0, MAX_RECORDED_EXCLUSIONS), excludedCount: r.excluded.length, files: r.files, bytes: r.bytes,
    })
  }
  const result: RepairSnapshotsResult = {
    dryRun: o.dryRun ?? false, snapshots: reports, damagedObjects: o.snapshots ? [] : damagedObjects.sort(), blobsChecked: checker.checked, treesWritten: 0, bytesWritten: 0,
  }
  const toWrite = reports.filter((r) => r.state === 'repaired')
  if (result.dryRun || toWrite.length === 0) return result

  // Trees first (packs, then the index naming them), snapshot objects last: the order every writer keeps.
  const written = await writeTrees(repo, newTrees)
  result.treesWritten = written.trees
  result.bytesWritten = written.bytes
  const byId = new Map(targets.map((s) => [s.id, s]))
  for (const r of toWrite) {
    const s = byId.get(r.id)!
    const { id: _id, ...old } = s
    const repaired: SnapshotRepair = {
      original: s.id,
      time: o.now().toISOString(),
      host: o.hostname,
      username: o.username,
      program: o.program,
      excluded_count: r.excludedCount,
      excluded: r.excluded,
    }
    const doc: SnapshotDoc = {
      ...old,
      tree: roots.get(s.id)!,
      tags: old.tags.includes(REPAIRED_TAG) ? [...old.tags] : [...old.tags, REPAIRED_TAG],
      stats: { ...old.stats, files: r.files, bytes: r.bytes },
      repaired,
    }
    r.repairedId = await saveSnapshot(repo, doc)
  }
  return result
}

/** Rebuilds one snapshot's tree without its unreadable entries; new trees are added to `newTrees`. */
async function rebuildSnapshot(
  repo: Repository, checker: BlobChecker, s: Snapshot, newTrees: Map<string, Buffer>,
): Promise<{ rootId: string | null; excluded: SnapshotRepairExclusion[]; files: number; bytes: number }> {
  // A subtree shared by several folders (or snapshots) is rebuilt once; its exclusions are listed under each path.
  const memo = new Map<string, Promise<Rebuilt | null>>()
  const rebuild = (treeId: string): Promise<Rebuilt | null> => {
    let p = memo.get(treeId)
    if (!p) {
      p = rebuildTree(treeId)
      memo.set(treeId, p)
    }
    return p
  }
  const rebuildTree = async (treeId: string): Promise<Rebuilt | null> => {
    const nodes = await checker.tree(treeId)
    if (nodes === null) return null
    const kept: TreeNode[] = []
    const excluded: RelExclusion[] = []
    let files = 0
    let bytes = 0
    let changed = false
    // Files' chunks are checked all at once (bounded by the checker); folders one after another.
    const problems = await Promise.all(nodes.map(async (n) => (n.type === 'file' ? firstProblem(checker, n.chunks ?? []) : null)))
    for (const [i, n] of nodes.entries()) {
      if (n.type === 'dir' && n.subtree) {
        const sub = await rebuild(n.subtree)
        if (sub === null) {
          excluded.push({ rel: [n.name], type: 'dir', reason: 'unreadable_tree', blob: n.subtree })
          changed = true
          continue
        }
        for (const e of sub.excluded) excluded.push({ ...e, rel: [n.name, ...e.rel] })
        files += sub.files
        bytes += sub.bytes
        if (sub.id !== n.subtree) {
          kept.push({ ...n, subtree: sub.id })
          changed = true
        } else kept.push(n)
        continue
      }
      const problem = problems[i]
      if (problem) {
        excluded.push({ rel: [n.name], type: 'file', reason: problem.reason, blob: problem.blob })
        changed = true
        continue
      }
      if (n.type === 'file') {
        files++
        bytes += n.size ?? 0
      }
      kept.push(n)
    }
    if (!changed) return { id: treeId, excluded, files, bytes }
    const plain = encodeTree(kept)
    const id = repo.ids.idHex(plain)
    newTrees.set(id, plain)
    return { id, excluded, files, bytes }
  }
  const root = await rebuild(s.tree)
  if (root === null) {
    return { rootId: null, excluded: [toExclusion({ rel: [], type: 'dir', reason: 'unreadable_tree', blob: s.tree })], files: 0, bytes: 0 }
  }
  return { rootId: root.id, excluded: root.excluded.map(toExclusion), files: root.files, bytes: root.bytes }
}

interface RelExclusion { rel: Buffer[]; type: 'file' | 'dir'; reason: SnapshotRepairExclusion['reason']; blob: string }
interface Rebuilt { id: string; excluded: RelExclusion[]; files: number; bytes: number }

function toExclusion(e: RelExclusion): SnapshotRepairExclusion {
  const path = Buffer.concat(e.rel.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p])))
  return { ...(isUtf8(path) ? { path: path.toString('utf8') } : { path_b64: path.toString('base64') }), type: e.type, reason: e.reason, blob: e.blob }
}

async function firstProblem(checker: BlobChecker, chunks: readonly string[]): Promise<{ reason: 'missing_blob' | 'damaged_blob'; blob: string } | null> {
  const results = await Promise.all(chunks.map((c) => checker.blob(c)))
  const i = results.findIndex((r) => r !== null)
  return i < 0 ? null : { reason: results[i]!, blob: chunks[i] }
}

/**
 * Reads and authenticates blobs through the index, each once. Missing (not in the index, or its pack gone)
 * and damaged blobs are answered as such; any other failure is thrown (it says nothing about the data).
 */
class BlobChecker {
  private readonly repo: Repository
  private readonly blobs = new Map<string, Promise<BlobProblem>>()
  private running = 0
  private readonly waiting: (() => void)[] = []
  checked = 0
  constructor(repo: Repository) {
    this.repo = repo
  }

  blob(id: string): Promise<BlobProblem> {
    let p = this.blobs.get(id)
    if (!p) {
      p = this.limited(async () => {
        await this.repo.loadBlob(id)
        return null
      })
      this.blobs.set(id, p)
    }
    return p
  }

  /** A tree's nodes, or null when it is missing, damaged or not a tree. */
  async tree(id: string): Promise<TreeNode[] | null> {
    let nodes: TreeNode[] | null = null
    const problem = await this.limited(async () => {
      nodes = decodeTree(await this.repo.loadBlob(id))
      return null
    })
    return problem === null ? nodes : null
  }

  private async limited(fn: () => Promise<null>): Promise<BlobProblem> {
    while (this.running >= CHECK_CONCURRENCY) await new Promise<void>((r) => this.waiting.push(r))
    this.running++
    try {
      return await fn()
    } catch (err) {
      if (err instanceof ArchivedError) throw err
      if (isNotFound(err)) return 'missing_blob'
      if (err instanceof IntegrityError || err instanceof FormatError) return 'damaged_blob'
      throw err
    } finally {
      this.checked++
      this.running--
      this.waiting.shift()?.()
    }
  }
}

/** Stores new trees the index does not know in metadata packs, then an index object naming them. */
async function writeTrees(repo: Repository, trees: Map<string, Buffer>): Promise<{ trees: number; bytes: number }> {
  const encoder = new BlobEncoder(repo.sealer, repo.config.compression.level)
  const indexBefore = repo.indexBytesWritten
  let open: { writer: PackWriter; object: ObjectWriter } | null = null
  let count = 0
  let bytes = 0
  const seal = async (): Promise<void> => {
    if (!open) return
    const pack = await open.writer.finish(repo.sealer)
    await repo.savePack(open.object, pack)
    bytes += pack.size
    open = null
  }
  try {
    for (const [id, plain] of trees) {
      if (repo.cache.hasBlob(id)) continue
      const blob = encoder.encode(plain)
      if (open && open.writer.wouldOverflow(blob.sealed.length)) await seal()
      open ??= repo.newPackWriter('meta')
      await open.writer.add(id, 'tree', blob)
      count++
    }
    await seal()
  } catch (err) {
    const o = open as { object: ObjectWriter } | null
    await o?.object.abort().catch(() => undefined)
    throw err
  }
  await repo.indexPendingPacks()
  return { trees: count, bytes: bytes + repo.indexBytesWritten - indexBefore }
}
