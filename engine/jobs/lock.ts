/**
 * Job locks in the state directory, across processes: a job never runs twice at once, also with two daemons
 * on one configuration or a manual `coldstore run` during a scheduled one.
 *
 * A lock is a file `<dir>/<name>.lock` holding the holder's identity (pid, host, boot id, process start
 * time), created complete in one step (written under a temporary name, then hard-linked into place, which
 * fails when the lock exists). A lock whose process is gone (crashed, killed, rebooted, pid reused) is
 * stale and taken over by the next process that wants it: nothing is ever left to block, and no one has
 * to remove a lock by hand.
 *
 * Taking over is rename-then-check: the stale file is renamed to a name of the taker's own, and only if
 * the renamed file is the one found stale (same inode) is it removed; otherwise (someone took it over and
 * locked anew in between) it is linked back. Holders check at every phase that their lock is still
 * theirs (`HeldLock.isHeld`), which covers the one remaining race (three processes within microseconds).
 */
import { randomBytes } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { link, lstat, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ProcessIdentity } from './events.js'
import { isProcessAlive, processIdentity } from './process-identity.js'

/** What a lock file holds. */
export interface LockRecord extends ProcessIdentity {
  /** Random, unique to this acquisition: how a holder recognizes its own lock. */
  token: string
  name: string
  /** When it was taken (ISO 8601). */
  since: string
  /** The run it is held for, if any. */
  run: string | null
  /** What the holder does (`backup`, `check`, `journal maintenance`). */
  purpose: string
}

/** The result of `tryAcquire`: the lock, or who holds it. */
export type LockAttempt = { lock: HeldLock; holder?: undefined } | { lock?: undefined; holder: LockRecord }

/** A lock this process holds. */
export class HeldLock {
  readonly record: LockRecord
  readonly path: string
  private released = false
  constructor(path: string, record: LockRecord) {
    this.path = path
    this.record = record
  }

  /** True while the lock file is still this acquisition's. */
  async isHeld(): Promise<boolean> {
    return !this.released && this.isHeldFile()
  }

  /**
   * Removes the lock if it is still ours. Idempotent. (Read, then unlink: no one takes over the lock of a
   * live process, so nothing can replace it in between.)
   */
  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    if (await this.isHeldFile()) await unlink(this.path).catch(() => undefined)
  }

  private async isHeldFile(): Promise<boolean> {
    try {
      return (JSON.parse(await readFile(this.path, 'utf8')) as LockRecord).token === this.record.token
    } catch {
      return false
    }
  }
}

/** Options of JobLocks. */
export interface JobLocksOptions {
  /** The folder of lock files (`<state dir>/locks`). */
  dir: string
  /** This machine's host name (recorded; processes are checked by pid and boot id). */
  host: string
  now: () => Date
}

/** The lock files of one state directory. */
export class JobLocks {
  readonly dir: string
  private readonly host: string
  private readonly now: () => Date

  constructor(o: JobLocksOptions) {
    this.dir = o.dir
    this.host = o.host
    this.now = o.now
  }

  private pathOf(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new Error(`not a lock name: ${JSON.stringify(name)}`)
    return join(this.dir, `${name}.lock`)
  }

  /** Reads a lock file: its record and inode, or null when there is none; `record` null when unreadable. */
  private async read(path: string): Promise<{ record: LockRecord | null; ino: number } | null> {
    let fh
    try {
      fh = await open(path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    try {
      const st = await fh.stat()
      const text = await fh.readFile('utf8')
      let record: LockRecord | null = null
      try {
        const r = JSON.parse(text) as LockRecord
        if (typeof r.pid === 'number' && typeof r.token === 'string') record = r
      } catch {
        record = null
      }
      return { record, ino: st.ino }
    } finally {
      await fh.close()
    }
  }

  /** The live holder of lock `name`, or null when it is free or its holder is gone. */
  async holder(name: string): Promise<LockRecord | null> {
    const found = await this.read(this.pathOf(name))
    if (!found?.record) return null
    return isProcessAlive(found.record, this.host) ? found.record : null
  }

  /**
   * Takes lock `name` unless a live process holds it; a stale lock is taken over.
   * `pid` names the process the lock is for (default this one).
   */
  async tryAcquire(name: string, info: { run: string | null; purpose: string; pid?: number }): Promise<LockAttempt> {
    const path = this.pathOf(name)
    await mkdir(this.dir, { recursive: true })
    for (let round = 0; round < 8; round++) {
      const record: LockRecord = {
        ...processIdentity(this.host, info.pid ?? process.pid),
        token: randomBytes(12).toString('hex'), name, since: this.now().toISOString(), run: info.run, purpose: info.purpose,
      }
      const tmp = `${path}.${record.token}.tmp`
      await writeFile(tmp, JSON.stringify(record) + '\n', { flag: 'wx' })
      try {
        await link(tmp, path)
        return { lock: new HeldLock(path, record) }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      } finally {
        await unlink(tmp).catch(() => undefined)
      }
      const found = await this.read(path)
      if (!found) continue // released in between: try again
      if (found.record && isProcessAlive(found.record, this.host)) return { holder: found.record }
      // Stale (its process is gone) or unreadable: take it over.
      const aside = `${path}.stale.${record.token}`
      try {
        await rename(path, aside)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw err
      }
      const st = await lstat(aside)
      if (st.ino !== found.ino) await link(aside, path).catch(() => undefined) // a fresh lock, not the stale one: back
      await unlink(aside).catch(() => undefined)
    }
    const found = await this.read(path)
    if (found?.record) return { holder: found.record }
    throw new Error(`could not take the lock ${path}: it keeps changing`)
  }

  /**
   * Takes lock `name`, waiting while a live process holds it: woken by changes in the lock folder, and
   * every `pollMs` (a holder that dies leaves no trace in the folder). Rejects when `signal` aborts.
   */
  async acquire(
    name: string,
    info: { run: string | null; purpose: string; pid?: number },
    o: { signal?: AbortSignal; pollMs?: number; onWait?: (holder: LockRecord) => void } = {},
  ): Promise<HeldLock> {
    await mkdir(this.dir, { recursive: true })
    let told = false
    let watcher: FSWatcher | null = null
    let wake: (() => void) | null = null
    try {
      watcher = watch(this.dir, () => wake?.())
    } catch {
      watcher = null
    }
    try {
      for (;;) {
        o.signal?.throwIfAborted()
        const a = await this.tryAcquire(name, info)
        if (a.lock) return a.lock
        if (!told) o.onWait?.(a.holder)
        told = true
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, o.pollMs ?? 2000)
          function done(): void {
            clearTimeout(timer)
            o.signal?.removeEventListener('abort', done)
            wake = null
            resolve()
          }
          wake = done
          o.signal?.addEventListener('abort', done, { once: true })
        })
      }
    } finally {
      watcher?.close()
    }
  }
}
