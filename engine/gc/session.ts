import { randomBytes } from 'node:crypto'
import { currentBootId, currentPidNamespace, processStartTime } from '../proc.js'
import { isNotFound } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import { listPrunePlans } from './plan.js'

/**
 * A lock object (`locks/<id>`, sealed JSON): "this process is writing (or pruning) and was alive at
 * `refreshed`". It never blocks a backup or a restore: prune reads writers' locks to know when it may
 * delete what it marked, and one prune refuses to start while another one's lock is live. A lock whose
 * owner died stops being refreshed and is ignored after `LOCK_STALE_MS` (no `unlock` command needed).
 */
export interface LockDoc {
  version: 1
  kind: 'writer' | 'prune'
  /** 32 hex: the same for every refresh of one session. */
  session: string
  operation: string
  host: string
  username: string
  pid: number
  program: string
  started: string
  refreshed: string
  /** Plans (`prune/<id>` ids) this writer read before it started to deduplicate: it does not reuse the blobs of their `delete` packs. */
  plans_seen: string[]
  /**
   * Where the owner runs, so that a reader on the same machine can tell that it died (Linux; absent elsewhere
   * and in locks written by coldstore before 2026-12-02): the boot id, the pid namespace, the process's start
   * time (clock ticks since boot, field 22 of /proc/<pid>/stat).
   */
  boot_id?: string
  pid_ns?: string
  proc_start?: string
}

/** A lock as listed. */
export interface StoredLock {
  name: string
  doc: LockDoc
}

/** How often a session rewrites its lock. */
export const LOCK_REFRESH_MS = 5 * 60_000
/** A lock not refreshed for this long (by the reader's clock) is taken as left behind by a dead process. */
export const LOCK_STALE_MS = 60 * 60_000

/** Who holds a session (for people reading `coldstore prune` output). */
export interface SessionOwner {
  operation: string
  host: string
  username: string
  program: string
}

/**
 * A held lock, rewritten every `refreshMs` (a new object, then the old one deleted: objects are never
 * changed). `lapsed` becomes true when a refresh came more than half the stale time after the previous
 * one (the process was suspended or cut off): a prune may then have taken the lock as dead.
 */
export class RepoSession {
  readonly repo: Repository
  readonly id: string
  private doc: LockDoc
  private current: string | null = null
  private readonly clock: () => Date
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()
  private lastOk: number
  private ended = false
  lapsed = false

  private constructor(repo: Repository, doc: LockDoc, clock: () => Date) {
    this.repo = repo
    this.doc = doc
    this.id = doc.session
    this.clock = clock
    this.lastOk = clock().getTime()
  }

  /** Writes the lock and starts refreshing it. */
  static async start(repo: Repository, o: SessionOwner & { kind: LockDoc['kind']; clock?: () => Date; refreshMs?: number; pid?: number }): Promise<RepoSession> {
    const clock = o.clock ?? (() => new Date())
    const t = clock().toISOString()
    const s = new RepoSession(repo, {
      version: 1, kind: o.kind, session: randomBytes(16).toString('hex'), operation: o.operation, host: o.host, username: o.username,
      pid: o.pid ?? process.pid, program: o.program, started: t, refreshed: t, plans_seen: [],
      ...(o.pid === undefined || o.pid === process.pid ? ownIdentity() : {}),
    }, clock)
    await s.write()
    const every = o.refreshMs ?? LOCK_REFRESH_MS
    s.timer = setInterval(() => { void s.refresh().catch(() => undefined) }, every)
    s.timer.unref()
    return s
  }

  /** The lock's object name now. */
  get name(): string | null {
    return this.current
  }

  private async write(): Promise<void> {
    const before = this.clock().getTime()
    const doc = { ...this.doc, refreshed: new Date(before).toISOString() }
    const id = await this.repo.putJsonObject('locks', doc)
    const old = this.current
    this.current = `locks/${id}`
    this.doc = doc
    if (before - this.lastOk > LOCK_STALE_MS / 2) this.lapsed = true
    this.lastOk = before
    if (old && old !== this.current) await this.repo.remote.delete(old)
  }

  /** Rewrites the lock now (one write at a time). */
  refresh(): Promise<void> {
    if (this.ended) return Promise.resolve()
    const p = this.writing.then(() => (this.ended ? undefined : this.write()))
    this.writing = p.catch(() => undefined)
    return p
  }

  /** Records the plans this writer honours, and rewrites the lock. */
  async setPlansSeen(ids: readonly string[]): Promise<void> {
    this.doc = { ...this.doc, plans_seen: [...ids].sort() }
    await this.refresh()
  }

  /** Stops refreshing and deletes the lock (idempotent). */
  async end(): Promise<void> {
    if (this.ended) return
    this.ended = true
    if (this.timer) clearInterval(this.timer)
    await this.writing
    if (this.current) await this.repo.remote.delete(this.current).catch(() => undefined)
    this.current = null
  }
}

/** Every lock object that can be read (unreadable ones are reported through `onError` and skipped). */
export async function listLocks(repo: Repository, onError?: (name: string, err: unknown) => void): Promise<StoredLock[]> {
  const names: string[] = []
  for await (const o of repo.remote.list('locks/')) if (/^locks\/[0-9a-f]{64}$/.test(o.name)) names.push(o.name)
  const out: StoredLock[] = []
  await forEachLimit(names, repo.remote.properties.maxConnections, async (name) => {
    try {
      out.push({ name, doc: await repo.getJsonObject<LockDoc>('locks', name.slice('locks/'.length)) })
    } catch (err) {
      if (isNotFound(err)) return // refreshed or ended meanwhile
      onError?.(name, err)
    }
  })
  return out.sort((a, b) => (a.doc.started < b.doc.started ? -1 : a.doc.started > b.doc.started ? 1 : a.name < b.name ? -1 : 1))
}

/**
 * True when a lock's owner is taken as alive: refreshed within `staleAfterMs` of `now` (either way: clocks
 * differ), or, when `seenEarlier` holds the lock names a plan recorded, rewritten since then (which needs
 * no clock agreement at all). Never when the owner ran on this machine (same boot id and pid namespace) and
 * its process is gone (no such pid, or a pid reused by a process started at another time): a killed prune
 * would otherwise stop every other prune, and a killed backup hold back every sweep, for an hour.
 */
export function isLockLive(lock: StoredLock, o: { now: Date; staleAfterMs?: number; seenEarlier?: ReadonlySet<string> }): boolean {
  // An owner on this machine that is gone (killed, crashed) is dead now, not an hour from now.
  if (ownerIsGone(lock.doc)) return false
  if (o.seenEarlier && !o.seenEarlier.has(lock.name)) return true
  const refreshed = Date.parse(lock.doc.refreshed)
  return Number.isFinite(refreshed) && Math.abs(o.now.getTime() - refreshed) < (o.staleAfterMs ?? LOCK_STALE_MS)
}

/** What a writer holds while it writes (`beginWrite`). */
export interface WriteSession {
  /** The lock (null in a dry run, which writes nothing). */
  session: RepoSession | null
  /** Plans read at the start, whose `delete` packs this writer does not reuse. */
  plansSeen: string[]
  /** Packs whose blobs were taken out of deduplication. */
  excludedPacks: number
  /** True when the lock lapsed during the run (see RepoSession.lapsed). */
  readonly lapsed: boolean
  end(): Promise<void>
}

/**
 * The writer's side of the prune protocol (FORMAT.md, "Locks and prune plans"), run before a backup
 * deduplicates anything:
 * 1. write a lock (a prune that marked packs before the lock existed will not delete them while it lives);
 * 2. read the prune plans, and record their ids in the lock;
 * 3. bring the index cache up to date (after 2: a plan carried out and removed before 2 rewrote the
 *    index before its removal, so this sync no longer finds the deleted packs);
 * 4. take the blobs of the plans' `delete` packs out of deduplication: they are stored again.
 * A dry run does 2-4 without a lock, so it predicts what the real run stores.
 */
export async function beginWrite(repo: Repository, o: SessionOwner & { dryRun?: boolean; clock?: () => Date; refreshMs?: number }): Promise<WriteSession> {
  const session = o.dryRun ? null : await RepoSession.start(repo, { ...o, kind: 'writer' })
  try {
    const plans = await listPrunePlans(repo, () => undefined)
    if (session && plans.length) await session.setPlansSeen(plans.map((p) => p.id))
    await repo.syncIndex()
    const exclude = plans.flatMap((p) => {
      const del = new Set(p.doc.delete)
      return p.packs.filter((k) => del.has(packObjectName(k.kind, k.packId)))
    })
    if (exclude.length) repo.cache.excludeStored(exclude)
    return {
      session,
      plansSeen: plans.map((p) => p.id),
      excludedPacks: exclude.length,
      get lapsed() { return session?.lapsed ?? false },
      end: async () => { await session?.end() },
    }
  } catch (err) {
    await session?.end()
    throw err
  }
}

/** Boot id, pid namespace and start time of this process (Linux), or nothing where /proc lacks them. */
function ownIdentity(): Pick<LockDoc, 'boot_id' | 'pid_ns' | 'proc_start'> {
  const boot = currentBootId()
  const ns = currentPidNamespace()
  const start = processStartTime(process.pid)
  return boot && ns && start ? { boot_id: boot, pid_ns: ns, proc_start: start } : {}
}


/**
 * True only when the lock says where its owner runs, that is here (this boot, this pid namespace), and no
 * process with its pid and start time exists. Anything else (another machine, another container, an older
 * lock without these fields) cannot be checked and is left to the clock.
 */
function ownerIsGone(doc: LockDoc): boolean {
  if (!doc.boot_id || !doc.pid_ns || !doc.proc_start) return false
  if (doc.boot_id !== currentBootId() || doc.pid_ns !== currentPidNamespace()) return false
  try {
    process.kill(doc.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return true
  }
  const now = processStartTime(doc.pid)
  return now !== null && now !== doc.proc_start
}
