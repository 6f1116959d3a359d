/**
 * Long operations (freezes) recorded in the local cache directory, so that
 * `coldstore status` shows current and recent ones and `coldstore resume`
 * re-runs an interrupted one with the same arguments:
 * `<cache dir>/operations/<id>.json`, rewritten atomically as it progresses.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

export type OperationState = 'running' | 'done' | 'failed' | 'interrupted'

export interface OperationRecord {
  id: string
  kind: 'freeze'
  /** The command line after `coldstore` (as typed), and the folder it ran in. */
  argv: string[]
  cwd: string
  host: string
  pid: number
  started: string
  updated: string
  state: OperationState
  /** 1 for the first run, +1 for each resume. */
  attempts: number
  progress: { files: number; bytes: number; total_files: number | null; total_bytes: number | null } | null
  /** What the operation made (e.g. the freeze id) once done. */
  result: Record<string, unknown> | null
  error: string | null
}

/** True when a process with this pid exists on this host. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class Operations {
  private readonly dir: string
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'operations')
  }

  private path(id: string): string {
    if (!/^[0-9a-f]{12}$/.test(id)) throw new Error(`not an operation id: ${JSON.stringify(id)}`)
    return join(this.dir, `${id}.json`)
  }

  private write(r: OperationRecord): void {
    mkdirSync(this.dir, { recursive: true })
    const tmp = join(this.dir, `.tmp-${r.id}-${process.pid}`)
    writeFileSync(tmp, JSON.stringify(r, null, 2) + '\n')
    renameSync(tmp, this.path(r.id))
  }

  /** A record as stored, with `running` turned into `interrupted` when its process is gone. */
  get(id: string): OperationRecord | null {
    let r: OperationRecord
    try {
      r = JSON.parse(readFileSync(this.path(id), 'utf8')) as OperationRecord
    } catch {
      return null
    }
    if (r.state === 'running' && r.host === hostname() && !alive(r.pid)) r.state = 'interrupted'
    return r
  }

  /** Every record, newest first. */
  list(): OperationRecord[] {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch {
      return []
    }
    const out: OperationRecord[] = []
    for (const n of names) {
      const m = /^([0-9a-f]{12})\.json$/.exec(n)
      if (!m) continue
      const r = this.get(m[1])
      if (r) out.push(r)
    }
    return out.sort((a, b) => (a.started < b.started ? 1 : a.started > b.started ? -1 : 0))
  }

  /**
   * Removes records of finished operations (done or failed) older than `maxAgeDays`, and the oldest
   * finished ones beyond `keep`: the folder does not grow forever. Interrupted and running ones stay
   * (they can be resumed). Never throws.
   */
  prune(now: Date, o: { maxAgeDays?: number; keep?: number } = {}): number {
    const maxAgeMs = (o.maxAgeDays ?? 90) * 86_400_000
    const keep = o.keep ?? 200
    let removed = 0
    const finished = this.list().filter((r) => r.state === 'done' || r.state === 'failed')
    finished.forEach((r, i) => {
      if (i >= keep || now.getTime() - Date.parse(r.updated) > maxAgeMs) {
        try {
          rmSync(this.path(r.id), { force: true })
          removed++
        } catch {
          // left for the next time
        }
      }
    })
    return removed
  }

  /** Records the start of an operation (or of another attempt of `resumeId`). */
  start(kind: OperationRecord['kind'], argv: string[], cwd: string, resumeId?: string): RunningOperation {
    this.prune(new Date())
    const now = new Date().toISOString()
    const prev = resumeId ? this.get(resumeId) : null
    const r: OperationRecord = {
      id: prev?.id ?? randomBytes(6).toString('hex'),
      kind,
      argv,
      cwd,
      host: hostname(),
      pid: process.pid,
      started: prev?.started ?? now,
      updated: now,
      state: 'running',
      attempts: (prev?.attempts ?? 0) + 1,
      progress: null,
      result: null,
      error: null,
    }
    this.write(r)
    return new RunningOperation(r, (x) => this.write(x))
  }
}

/** The record of the operation this process runs. */
export class RunningOperation {
  readonly record: OperationRecord
  private readonly save: (r: OperationRecord) => void
  private last = 0
  constructor(record: OperationRecord, save: (r: OperationRecord) => void) {
    this.record = record
    this.save = save
  }
  get id(): string {
    return this.record.id
  }
  /** Records progress (at most once a second). */
  progress(p: { files: number; bytes: number; totalFiles: number | null; totalBytes: number | null }): void {
    const now = Date.now()
    if (now - this.last < 1000) return
    this.last = now
    this.record.progress = { files: p.files, bytes: p.bytes, total_files: p.totalFiles, total_bytes: p.totalBytes }
    this.record.updated = new Date(now).toISOString()
    this.save(this.record)
  }
  finish(result: Record<string, unknown>): void {
    this.record.state = 'done'
    this.record.result = result
    this.record.updated = new Date().toISOString()
    this.save(this.record)
  }
  fail(message: string): void {
    this.record.state = 'failed'
    this.record.error = message
    this.record.updated = new Date().toISOString()
    this.save(this.record)
  }
}
