/**
 * The daemon: schedules every job (backups on `schedule:`, checks on `check:` / `verify.schedule:`) on an
 * injected clock, starts each run as a worker process (the caller's StartWorker: the CLI starts
 * `coldstore run` under the job's nice/ionice, so this process stays responsive), detects runs missed
 * while it was down and runs them once or only reports them (the job's `missed:` policy), and stops
 * cleanly: running workers get a grace period to finish, then SIGTERM (they stop at a checkpoint and
 * record the run as interrupted), then SIGKILL (the daemon records it).
 *
 * Missed runs: the daemon keeps `<state dir>/daemon/watched.json`, the last time any daemon was watching
 * each job (written at every wake-up, at least every 10 minutes, and at stop). A fire time is missed when
 * it falls after both the job's last run and that time, and is noticed later than the late tolerance
 * (15 minutes, or a quarter of the interval when shorter): after downtime, a suspended machine, or a
 * clock jump. A job never watched before is not behind: it starts being watched now.
 */
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { JobDefinition } from '../config/index.js'
import { missedRuns, nextRun, previousRun, type Schedule } from '../schedule/index.js'
import type { Clock } from './clock.js'
import type { JournalEvent, MissedEvent, RunKind, RunTrigger } from './events.js'
import { jobStatus, lateToleranceMs, runReference, type JobStatus } from './health.js'
import { dayOf, type Journal } from './journal.js'
import type { JobLocks, LockRecord } from './lock.js'
import { isProcessAlive } from './process-identity.js'
import { jobLockName, type JobEventSink } from './runner.js'
import { newRunId, runDay, type RunSummary } from './runs.js'
import { findRunDay, readJournalState, readRun, type JournalState } from './state.js'

/** What the daemon asks a worker to do. */
export interface WorkerRequest {
  job: JobDefinition
  kind: RunKind
  run: string
  trigger: RunTrigger
  scheduledFor: Date | null
}

/** A started worker process. */
export interface WorkerHandle {
  pid: number | undefined
  /** Resolves when it has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  kill(signal: NodeJS.Signals): void
  /** The last lines it wrote on stderr (for a run that ended without a journal record). */
  stderrTail(): string
}

/** Starts a worker for one run: the process takes the job's lock and writes the run's journal events. */
export type StartWorker = (r: WorkerRequest) => WorkerHandle

/** A run this daemon's worker is doing. */
export interface DaemonRun {
  run: string
  job: string
  kind: RunKind
  trigger: RunTrigger
  scheduledFor: Date | null
  pid: number | undefined
}

/** The answer to a run request. */
export type RunRequestResult =
  | { ok: true; run: string }
  | { ok: false; reason: 'unknown_job' | 'running' | 'stopping' | 'no_check'; run?: string; holder?: LockRecord }

/** Options of Daemon. */
export interface DaemonOptions {
  jobs: ReadonlyMap<string, JobDefinition>
  journal: Journal
  locks: JobLocks
  clock: Clock
  host: string
  stateDir: string
  startWorker: StartWorker
  onEvent?: JobEventSink
  /** One line per notable thing (runs started and ended, missed runs, shutdown). */
  log?: (line: string) => void
  /** Journal rotation: days kept (default 400). */
  journalDays?: number
  /** Shown in the daemon's journal events. */
  listen?: string | null
  /** Called when a run's worker has exited, before the run's end is logged (the CLI refreshes its browsing views). */
  onRunEnded?: (r: WorkerRequest) => void | Promise<void>
  /** Waits in real time during shutdown (default setTimeout): the grace period is wall time. */
  delay?: (ms: number) => Promise<void>
}

interface Entry {
  job: JobDefinition
  kind: RunKind
  schedule: Schedule
  /** The last fire time handled (run, reported missed, or before watching began). */
  ref: Date
}

const HEARTBEAT_MS = 10 * 60_000
const alive = (host: string) => (p: Parameters<typeof isProcessAlive>[0]): boolean => isProcessAlive(p, host)

/** The scheduler, worker supervisor and status source of `coldstore daemon`. */
export class Daemon {
  private readonly o: DaemonOptions
  private readonly entries: Entry[] = []
  private readonly workers = new Map<string, { info: DaemonRun; handle: WorkerHandle; done: Promise<void> }>()
  private readonly pending = new Map<string, { kind: RunKind; trigger: RunTrigger; scheduledFor: Date | null }[]>()
  private readonly stopController = new AbortController()
  private loop: Promise<void> | null = null
  private stopping = false
  private lastWatchWrite = 0
  private nextMaintenance = 0
  private cache: JournalState | null = null
  private cacheValid = false
  private watcher: FSWatcher | null = null

  constructor(o: DaemonOptions) {
    this.o = o
  }

  private log(line: string): void {
    this.o.log?.(line)
  }

  private get watchedPath(): string {
    return join(this.o.stateDir, 'daemon', 'watched.json')
  }

  private async readWatched(): Promise<Record<string, string>> {
    try {
      const v = JSON.parse(await readFile(this.watchedPath, 'utf8')) as { jobs?: Record<string, string> }
      return v.jobs ?? {}
    } catch {
      return {}
    }
  }

  private async writeWatched(now: Date): Promise<void> {
    const jobs = await this.readWatched()
    for (const name of this.o.jobs.keys()) jobs[name] = now.toISOString()
    await mkdir(join(this.o.stateDir, 'daemon'), { recursive: true })
    const tmp = `${this.watchedPath}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify({ updated: now.toISOString(), jobs }, null, 1) + '\n')
    await rename(tmp, this.watchedPath)
    this.lastWatchWrite = now.getTime()
  }

  /** The journal's runs and missed reports (cached until the journal folder changes). */
  async state(): Promise<JournalState> {
    if (this.cache) return this.cache
    this.cacheValid = true
    const state = await readJournalState(this.o.journal, alive(this.o.host))
    // A change may have come in while reading: keep the result only if none did (and changes are watched).
    if (this.cacheValid && this.watcher) this.cache = state
    return state
  }

  private invalidate(): void {
    this.cache = null
    this.cacheValid = false
  }

  /** The status of every job (what `coldstore jobs --json` prints). */
  async statuses(): Promise<JobStatus[]> {
    const state = await this.state()
    const now = this.o.clock.now()
    return [...this.o.jobs.values()].map((j) => jobStatus(j, state.runs, state.missed, now))
  }

  /** Runs, newest first (of one job when given). */
  async runs(o: { job?: string; limit?: number } = {}): Promise<RunSummary[]> {
    const state = await this.state()
    return state.runs.filter((r) => o.job === undefined || r.job === o.job).reverse().slice(0, o.limit ?? 50)
  }

  /** The run of one of this daemon's workers, by id. */
  private mine(id: string): DaemonRun | undefined {
    return [...this.workers.values()].find((w) => w.info.run === id)?.info
  }

  /**
   * One run and its events. A run this daemon just started whose worker has not written its first event
   * yet is reported as running, with no events.
   */
  async run(id: string): Promise<{ run: RunSummary; events: JournalEvent[] } | null> {
    const found = await readRun(this.o.journal, id, alive(this.o.host))
    if (found) return found
    const w = this.mine(id)
    if (!w) return null
    return {
      run: {
        id, job: w.job, kind: w.kind, trigger: w.trigger, scheduled_for: w.scheduledFor?.toISOString() ?? null, started: this.o.clock.now().toISOString(),
        finished: null, state: 'running', result: null, phase: null, attempt: 1, retry_at: null, error: null, duration_ms: null, snapshot: null,
        stats: null, retention: null, check: null, progress: null, exit_code: null, process: null,
      },
      events: [],
    }
  }

  /** A run's events, then new ones as they are written, until its finished event or `signal`. */
  async *follow(id: string, signal: AbortSignal): AsyncGenerator<JournalEvent> {
    let day = await findRunDay(this.o.journal, id)
    if (!day && this.mine(id)) {
      // Started here, first event not written yet: from the day before the earlier of its id's and today.
      const first = [runDay(id), this.o.journal.today()].sort()[0]
      day = dayOf(new Date(Date.parse(`${first}T00:00:00Z`) - 86_400_000))
    }
    if (!day) return
    const ac = new AbortController()
    const stop = (): void => ac.abort()
    signal.addEventListener('abort', stop, { once: true })
    try {
      for await (const e of this.o.journal.follow({ fromDay: day, signal: ac.signal })) {
        if (e.run !== id) continue
        yield e
        if (e.type === 'finished' || e.type === 'skipped') return
      }
    } finally {
      signal.removeEventListener('abort', stop)
      ac.abort()
    }
  }

  /** The runs this daemon's workers are doing. */
  get running(): DaemonRun[] {
    return [...this.workers.values()].map((w) => w.info)
  }

  /** The jobs. */
  get jobs(): ReadonlyMap<string, JobDefinition> {
    return this.o.jobs
  }

  /**
   * Starts: records the start, maintains the journal, detects missed runs, then schedules until stop().
   */
  async start(): Promise<void> {
    const now = this.o.clock.now()
    await this.o.journal.append({ type: 'daemon', run: null, job: null, state: 'started', pid: process.pid, host: this.o.host, jobs: [...this.o.jobs.keys()], listen: this.o.listen ?? null })
    await this.maintain()
    try {
      this.watcher = watch(this.o.journal.dir, () => this.invalidate())
    } catch {
      this.watcher = null // no cache then
    }
    const state = await readJournalState(this.o.journal, alive(this.o.host))
    const watched = await this.readWatched()
    for (const job of this.o.jobs.values()) {
      const schedules: [RunKind, Schedule | null][] = [['backup', job.schedule], ['check', job.restic?.checkSchedule ?? job.verify?.schedule ?? null]]
      for (const [kind, schedule] of schedules) {
        if (!schedule) continue
        const last = state.runs.filter((r) => r.job === job.name && r.kind === kind && r.result !== 'interrupted').pop()
        const times = [last ? runReference(last).getTime() : NaN, watched[job.name] ? Date.parse(watched[job.name]) : NaN].filter((x) => !Number.isNaN(x))
        // Never watched and never run: nothing is behind; watching starts now.
        const ref = new Date(times.length ? Math.max(...times) : now.getTime())
        this.entries.push({ job, kind, schedule, ref })
      }
    }
    this.loop = this.schedule().catch((err: unknown) => this.log(`scheduler stopped: ${(err as Error).message}`))
  }

  private async maintain(): Promise<void> {
    try {
      const r = await this.o.journal.maintain({ journalDays: this.o.journalDays ?? 400 })
      if (r.compressed.length || r.deleted.length || r.altered.length) {
        this.log(`journal: ${r.sealed.length} sealed, ${r.compressed.length} compressed, ${r.deleted.length} deleted${r.altered.length ? `, ALTERED: ${r.altered.join(', ')}` : ''}`)
      }
    } catch (err) {
      this.log(`journal maintenance failed: ${(err as Error).message}`)
    }
  }

  private async schedule(): Promise<void> {
    const signal = this.stopController.signal
    while (!signal.aborted) {
      const now = this.o.clock.now()
      let fired = false
      for (const e of this.entries) {
        const slots = missedRuns(e.schedule, { lastRun: e.ref, since: e.ref, now, limit: 100 })
        if (slots.length === 0) continue
        fired = true
        // The latest fire time up to now (beyond the 100 listed, a long downtime has more).
        const latest = slots.length < 100 ? slots[slots.length - 1] : (previousRun(e.schedule, now) ?? slots[slots.length - 1])
        const count = slots.length < 100 ? slots.length : missedRuns(e.schedule, { lastRun: e.ref, since: e.ref, now, limit: 100_000 }).length
        e.ref = latest
        if (slots.length === 1 && now.getTime() - latest.getTime() <= lateToleranceMs(e.schedule, now)) {
          this.enqueue(e.job, e.kind, 'schedule', latest)
          continue
        }
        const policy = e.job.missed
        const ev = (await this.o.journal.append({
          type: 'missed', run: null, job: e.job.name, kind: e.kind, scheduled_for: slots.map((s) => s.toISOString()), count, latest: latest.toISOString(), policy,
        })) as MissedEvent
        const what = `${count >= 100_000 ? '100000 or more' : count} ${e.kind === 'check' ? 'check' : 'run'}${count === 1 ? '' : 's'} (${slots[0].toISOString()}${count > 1 ? ` to ${latest.toISOString()}` : ''})`
        this.log(`${e.job.name}: missed ${what}; ${policy === 'run' ? 'running once now' : 'not run (missed: skip)'}`)
        this.invalidate()
        void Promise.resolve(this.o.onEvent?.({ kind: 'missed', job: e.job.name, run: null, message: `${e.job.name}: missed ${what}${policy === 'run' ? '; running it now' : ''}`, t: ev.t, event: ev })).catch(() => undefined)
        if (policy === 'run') this.enqueue(e.job, e.kind, 'missed', latest)
      }
      if (fired || now.getTime() - this.lastWatchWrite >= HEARTBEAT_MS) await this.writeWatched(now).catch((err: unknown) => this.log(`cannot write ${this.watchedPath}: ${(err as Error).message}`))
      if (now.getTime() >= this.nextMaintenance) {
        if (this.nextMaintenance !== 0) await this.maintain()
        // Daily, at 00:10 UTC.
        const d = new Date(now)
        d.setUTCHours(0, 10, 0, 0)
        if (d.getTime() <= now.getTime()) d.setUTCDate(d.getUTCDate() + 1)
        this.nextMaintenance = d.getTime()
      }
      let next = Math.min(now.getTime() + HEARTBEAT_MS, this.nextMaintenance)
      for (const e of this.entries) {
        const n = nextRun(e.schedule, now)
        if (n) next = Math.min(next, n.getTime())
      }
      await this.o.clock.sleepUntil(new Date(next), signal)
    }
  }

  private enqueue(job: JobDefinition, kind: RunKind, trigger: RunTrigger, scheduledFor: Date | null): string | null {
    if (this.stopping) return null
    if (this.workers.has(job.name)) {
      const q = this.pending.get(job.name) ?? []
      // One waiting run per kind: a later fire time replaces an earlier one still waiting.
      const i = q.findIndex((p) => p.kind === kind)
      if (i >= 0) q[i] = { kind, trigger, scheduledFor }
      else q.push({ kind, trigger, scheduledFor })
      this.pending.set(job.name, q)
      this.log(`${job.name}: ${kind} due at ${scheduledFor?.toISOString() ?? 'now'} waits for the run in progress`)
      return null
    }
    return this.spawn(job, kind, trigger, scheduledFor)
  }

  private spawn(job: JobDefinition, kind: RunKind, trigger: RunTrigger, scheduledFor: Date | null): string {
    const run = newRunId(this.o.clock.now())
    const req: WorkerRequest = { job, kind, run, trigger, scheduledFor }
    const handle = this.o.startWorker(req)
    const info: DaemonRun = { run, job: job.name, kind, trigger, scheduledFor, pid: handle.pid }
    this.log(`${job.name}: ${kind} run ${run} started (${trigger}${scheduledFor ? `, due ${scheduledFor.toISOString()}` : ''}, pid ${handle.pid})`)
    const done = handle.exited.then((exit) => this.workerExited(req, handle, exit))
    this.workers.set(job.name, { info, handle, done })
    this.invalidate()
    return run
  }

  private async workerExited(req: WorkerRequest, handle: WorkerHandle, exit: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> {
    const name = req.job.name
    try {
      await Promise.resolve(this.o.onRunEnded?.(req)).catch((err: unknown) => this.log(`${name}: after run ${req.run}: ${(err as Error).message}`))
      const found = await readRun(this.o.journal, req.run, alive(this.o.host))
      const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal}`
      if (!found || found.run.state === 'running' || (found.run.result === 'interrupted' && !found.events.some((e) => e.type === 'finished'))) {
        // The worker ended without recording the end (killed, crashed, or failed before it started).
        const tail = handle.stderrTail().trim().split('\n').pop() ?? ''
        const error = `the worker process ended (${how}) without recording the run's end${tail ? `: ${tail}` : ''}`
        if (!found) {
          await this.o.journal.append({
            type: 'started', run: req.run, job: name, kind: req.kind, trigger: req.trigger, scheduled_for: req.scheduledFor?.toISOString() ?? null,
            job_type: req.job.type, pid: handle.pid ?? 0, host: this.o.host, boot_id: null, proc_start: null,
          })
        }
        // Lost mid-run (or stopped during shutdown): interrupted; never got to start its run: failed.
        const result = found || (this.stopping && exit.signal) ? 'interrupted' : 'failed'
        const ev = await this.o.journal.append({
          type: 'finished', run: req.run, job: name, kind: req.kind, result, error, attempts: found?.run.attempt ?? 1,
          duration_ms: 0, snapshot: null, stats: null, retention: null, check: null, exit_code: exit.code ?? 128,
        })
        this.log(`${name}: run ${req.run} ${result}: ${error}`)
        if (!this.stopping) void Promise.resolve(this.o.onEvent?.({ kind: req.kind === 'check' ? 'verify_failure' : 'failure', job: name, run: req.run, message: `${name}: ${error}`, t: ev.t, event: ev })).catch(() => undefined)
      } else {
        this.log(`${name}: run ${req.run} ${found.run.result}${found.run.error ? `: ${found.run.error}` : ''}`)
      }
    } catch (err) {
      this.log(`${name}: cannot read the journal after run ${req.run}: ${(err as Error).message}`)
    } finally {
      this.workers.delete(name)
      this.invalidate()
      const q = this.pending.get(name)
      const nextReq = q?.shift()
      if (q && q.length === 0) this.pending.delete(name)
      if (nextReq && !this.stopping) this.spawn(req.job, nextReq.kind, nextReq.trigger, nextReq.scheduledFor)
    }
  }

  /** Starts a run now (`POST /api/jobs/<name>/run`), unless the job is running here or elsewhere. */
  async requestRun(name: string, kind: RunKind = 'backup'): Promise<RunRequestResult> {
    if (this.stopping) return { ok: false, reason: 'stopping' }
    const job = this.o.jobs.get(name)
    if (!job) return { ok: false, reason: 'unknown_job' }
    const mine = this.workers.get(name)
    if (mine) return { ok: false, reason: 'running', run: mine.info.run }
    const holder = await this.o.locks.holder(jobLockName(name))
    if (holder) return { ok: false, reason: 'running', run: holder.run ?? undefined, holder }
    return { ok: true, run: this.spawn(job, kind, 'api', null) }
  }

  /** Resolves when no worker of this daemon is running. */
  async idle(): Promise<void> {
    while (this.workers.size > 0) await Promise.all([...this.workers.values()].map((w) => w.done))
  }

  /**
   * Stops: no new runs; running ones get `graceMs` to finish, then SIGTERM (they stop at a checkpoint and
   * record themselves interrupted), then after `killAfterMs` SIGKILL (recorded here). Records the stop.
   */
  async stop(o: { graceMs: number; killAfterMs?: number }): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.stopController.abort()
    await this.loop
    const delay = this.o.delay ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()))
    const running = [...this.workers.values()]
    if (running.length) {
      this.log(`stopping: ${running.length} run${running.length === 1 ? '' : 's'} in progress; waiting up to ${Math.round(o.graceMs / 1000)} s`)
      const all = Promise.all(running.map((w) => w.done))
      if (o.graceMs > 0) await Promise.race([all, delay(o.graceMs)])
      for (const w of this.workers.values()) {
        this.log(`${w.info.job}: stopping run ${w.info.run} (SIGTERM)`)
        w.handle.kill('SIGTERM')
      }
      const left = [...this.workers.values()]
      if (left.length) {
        await Promise.race([Promise.all(left.map((w) => w.done)), delay(o.killAfterMs ?? 10_000)])
        for (const w of this.workers.values()) {
          this.log(`${w.info.job}: run ${w.info.run} did not stop: SIGKILL`)
          w.handle.kill('SIGKILL')
        }
      }
      await this.idle()
    }
    this.watcher?.close()
    this.watcher = null
    this.invalidate()
    const now = this.o.clock.now()
    await this.writeWatched(now).catch(() => undefined)
    await this.o.journal.append({ type: 'daemon', run: null, job: null, state: 'stopped', pid: process.pid, host: this.o.host, jobs: [...this.o.jobs.keys()], listen: this.o.listen ?? null })
  }
}
