import { NotFoundError, UsageError, isNotFound } from '../errors.js'
import { readdir, rm } from 'node:fs/promises'
import { forEachLimit, type Repository } from '../repo/index.js'

/** Statistics of a snapshot run, stored in the snapshot object. */
export interface SnapshotStats {
  files: number
  dirs: number
  /** Bytes of file contents in the source. */
  bytes: number
  new_files: number
  changed_files: number
  unchanged_files: number
  new_chunks: number
  /** Bytes actually written to the repository (packs, index objects and the snapshot's trees). */
  added_bytes: number
  /** Of `added_bytes`: data packs (file contents) and metadata packs (trees); the rest is index objects. Absent in snapshots made before 2026-11-22. */
  added_data_bytes?: number
  added_meta_bytes?: number
  /**
   * Of the new blobs: plaintext bytes (`new_raw_bytes`) and their stored, compressed and sealed sizes
   * (`new_stored_bytes`), file contents and trees together, without pack headers and index objects. A dry
   * run predicts both exactly. Absent in snapshots made before 2026-11-22 (freeze work).
   */
  new_raw_bytes?: number
  new_stored_bytes?: number
  duration_s: number
}

/** A snapshot (or freeze) object as stored under `snapshots/<id>` (sealed JSON). */
export interface SnapshotDoc {
  version: 1
  kind: 'snapshot' | 'freeze'
  time: string
  host: string
  username: string
  /** Absolute source paths; the root tree has one entry per path, named by its last component. */
  paths: string[]
  tree: string
  job: string | null
  tags: string[]
  parent: string | null
  stats: SnapshotStats
  program: string
  /** Event metadata of freezes and any extra fields later versions add. */
  meta?: Record<string, unknown>
  /** Set on a snapshot written by `repair snapshots`: which snapshot it replaces and what it leaves out. */
  repaired?: SnapshotRepair
}

/** One entry `repair snapshots` left out of a snapshot because its data or listing cannot be read. */
export interface SnapshotRepairExclusion {
  /** Path from the root tree, components joined by '/' (`path_b64`: base64 of the raw bytes when not UTF-8). */
  path?: string
  path_b64?: string
  type: 'file' | 'dir'
  /** `missing_blob`/`damaged_blob`: a chunk of the file; `unreadable_tree`: the folder's listing. */
  reason: 'missing_blob' | 'damaged_blob' | 'unreadable_tree'
  /** The chunk or tree blob that cannot be read. */
  blob: string
}

/** What a repaired snapshot records about its repair (FORMAT.md, "Snapshots"). */
export interface SnapshotRepair {
  /** The snapshot this one replaces; it is left as it was. */
  original: string
  /** When, where, by whom and with what the repair was made. */
  time: string
  host: string
  username: string
  program: string
  /** How many entries were left out, and the first 1000 of them in walk order. */
  excluded_count: number
  excluded: SnapshotRepairExclusion[]
}

/** A snapshot with its id. */
export interface Snapshot extends SnapshotDoc {
  id: string
}

/** Stores a snapshot object; returns its id. */
export async function saveSnapshot(repo: Repository, doc: SnapshotDoc): Promise<string> {
  return repo.putJsonObject('snapshots', doc)
}

/**
 * Loads one snapshot by full id. The sealed object is kept in the local cache (snapshot objects never
 * change; cached bytes are checked against the id like fetched ones), so listing 500 snapshots of a
 * remote repository costs one listing plus the new ones.
 */
export async function loadSnapshot(repo: Repository, id: string, o: { fresh?: boolean } = {}): Promise<Snapshot> {
  const doc = await repo.getJsonObject<SnapshotDoc>('snapshots', id, { cached: o.fresh !== true })
  return { ...doc, id }
}

/**
 * Lists every snapshot, oldest first. Damaged objects are reported through `onError` and skipped.
 * `fresh` reads every object from the remote instead of the local cache (verify).
 */
export async function listSnapshots(repo: Repository, onError?: (id: string, err: unknown) => void, o: { fresh?: boolean } = {}): Promise<Snapshot[]> {
  const ids: string[] = []
  for await (const o of repo.remote.list('snapshots/')) ids.push(o.name.slice('snapshots/'.length))
  await dropForgotten(repo, new Set(ids))
  const out: Snapshot[] = []
  await forEachLimit(ids, repo.remote.properties.maxConnections * 2, async (id) => {
    try {
      out.push(await loadSnapshot(repo, id, o))
    } catch (err) {
      if (isNotFound(err)) return
      if (onError) onError(id, err)
      else throw err
    }
  })
  out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1))
  return out
}

/** Removes cached snapshot objects whose snapshot is gone from the repository (forgotten). Never throws. */
async function dropForgotten(repo: Repository, ids: ReadonlySet<string>): Promise<void> {
  const dir = `${repo.cachePath}/objects/snapshots`
  const names = await readdir(dir).catch(() => [] as string[])
  for (const n of names) {
    if (!ids.has(n) && !n.endsWith('.tmp')) await rm(`${dir}/${n}`, { force: true }).catch(() => undefined)
  }
}

/**
 * Resolves a snapshot reference: a full id, a unique prefix of at least 8 hex
 * chars, or `latest` (optionally narrowed by job and host).
 */
export async function findSnapshot(
  repo: Repository,
  ref: string,
  filter: { job?: string; host?: string } = {},
): Promise<Snapshot> {
  if (ref === 'latest') {
    const all = (await listSnapshots(repo, () => {})).filter(
      (s) => (filter.job === undefined || s.job === filter.job) && (filter.host === undefined || s.host === filter.host),
    )
    const last = all.at(-1)
    if (!last) throw new NotFoundError('latest', filter.job ? `no snapshot of job ${filter.job}` : 'the repository has no snapshots')
    return last
  }
  if (!/^[0-9a-f]{8,64}$/.test(ref)) throw new UsageError(`not a snapshot id: ${JSON.stringify(ref)} (use a full id, 8+ hex chars of one, or "latest")`)
  const matches: string[] = []
  for await (const o of repo.remote.list('snapshots/')) {
    const id = o.name.slice('snapshots/'.length)
    if (id.startsWith(ref)) matches.push(id)
  }
  if (matches.length === 0) throw new NotFoundError(ref, `no snapshot ${ref}`)
  if (matches.length > 1) throw new UsageError(`snapshot prefix ${ref} is ambiguous (${matches.length} matches): give more characters`)
  return loadSnapshot(repo, matches[0])
}
