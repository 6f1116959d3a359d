/**
 * One run of a job, start to end: the job's lock, pre-hooks, the backup (or check), post-hooks, then
 * retention after a successful backup; attempts retried with doubling delays; every step in the journal.
 *
 * The work itself (what a backup or a check is for this job type) is injected as JobWork, so the same
 * sequence drives coldstore's engine and the restic binary.
 */
import type { JobDefinition } from '../config/index.js'
import { ConfigError, FormatError, InterruptedError, KeyError, NotFoundError, PasswordError, UsageError } from '../errors.js'
import type { Clock } from './clock.js'
import type {
  CheckOutcome, FinishedEvent, JournalEvent, JournalEventInput, RetentionOutcome, RunKind, RunPhase, RunResult, RunStats, RunTrigger, SkippedEvent, StartedEvent,
} from './events.js'
import { runHook } from './hooks.js'
import type { Journal } from './journal.js'
import type { JobLocks, LockRecord } from './lock.js'
import { processIdentity } from './process-identity.js'

/** What a job's work gets for one attempt. */
export interface AttemptContext {
  run: string
  attempt: number
  signal: AbortSignal
  /** A log line into the journal. */
  log(level: 'info' | 'warn' | 'error', source: 'backup' | 'restic' | 'retention' | 'coldstore', message: string): void
  /** Progress of the backup (sampled into the journal). */
  progress(p: { files: number; bytes: number; totalFiles: number | null; totalBytes: number | null }): void
}

/** A backup that stored its snapshot. (A backup that did not throws.) */
export interface BackupOutcome {
  /** `warning`: written, but some entries could not be read. */
  result: 'success' | 'warning'
  snapshot: string | null
  stats: RunStats | null
  /** What the warning is about. */
  warning: string | null
}

/** The work of a job type. Methods throw to fail the attempt (InterruptedError when `signal` aborted). */
export interface JobWork {
  backup(ctx: AttemptContext): Promise<BackupOutcome>
  check(ctx: AttemptContext): Promise<CheckOutcome>
  /** Applies the job's retention after a successful backup (called only when the job has retention rules). */
  retention(ctx: AttemptContext, o: { snapshot: string | null }): Promise<RetentionOutcome>
}

/** What notifications are told about (see JobEventSink). */
export interface JobEvent {
  kind: 'success' | 'warning' | 'failure' | 'missed' | 'verify_failure'
  job: string
  /** The run, or null (missed runs that were only reported). */
  run: string | null
  /** One line for a human. */
  message: string
  t: string
  /** The journal event it comes from (a finished or missed event). */
  event: JournalEvent
}

/**
 * Receives job events: the daemon and `coldstore run` call it after each run ends and for missed runs.
 * Notifications (webhook, e-mail) plug in here; the default does nothing. It must not throw (a rejected
 * promise is ignored).
 */
export type JobEventSink = (e: JobEvent) => void | Promise<void>

/** Options of runJob. */
export interface RunJobOptions {
  job: JobDefinition
  kind: RunKind
  runId: string
  trigger: RunTrigger
  scheduledFor: Date | null
  journal: Journal
  locks: JobLocks
  /** Time, and the waits between attempts. */
  clock: Clock
  host: string
  work: JobWork
  /** Hooks run in this folder with this environment (plus COLDSTORE_JOB, COLDSTORE_RUN, COLDSTORE_PHASE, COLDSTORE_RESULT). */
  hooks: { cwd: string; env: Record<string, string | undefined> }
  /** Aborting stops the run at its next checkpoint; it is recorded as interrupted. */
  signal: AbortSignal
  /** Wait for the job's lock instead of recording the run as skipped. */
  wait?: { pollMs?: number; onWait?: (holder: LockRecord) => void }
  /** Extra attempts after a failure (default: the job's `retries`). */
  retries?: number
  /** Least time between two progress samples in the journal (default 10 s). */
  progressIntervalMs?: number
  /** The exit code recorded for a result (cli/ chooses exit codes). */
  exitCode: (result: RunResult, error: unknown) => number
  onEvent?: JobEventSink
  /** Every event this run writes, as written (the CLI shows them). */
  onJournal?: (e: JournalEvent) => void
}

/** What runJob returns. */
export interface RunOutcome {
  run: string
  result: RunResult
  exitCode: number
  /** The error that failed (or interrupted) the run, if any. */
  error: unknown
  event: FinishedEvent | SkippedEvent | null
}

/** Errors retrying does not cure: configuration, usage, password, missing repository, format, a stop. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof PasswordError || err instanceof KeyError) return false
  if (err instanceof FormatError || err instanceof InterruptedError) return false
  if (err instanceof NotFoundError && err.what === 'config') return false
  return true
}

/** The lock name of a job. */
export function jobLockName(job: string): string {
  return `job.${job}`
}

class HookFailed extends Error {}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Runs one run of a job (all its attempts). Resolves with its result; rejects only when the journal cannot be written. */
export async function runJob(o: RunJobOptions): Promise<RunOutcome> {
  const { job, journal } = o
  let writing: Promise<unknown> = Promise.resolve()
  let journalError: unknown = null
  const write = (e: JournalEventInput): Promise<void> => {
    const p = writing.then(() => journal.append(e)).then((x) => o.onJournal?.(x), (err: unknown) => { journalError ??= err })
    writing = p
    return p
  }
  const flush = async (): Promise<void> => {
    await writing
    if (journalError) throw journalError
  }
  const scheduledFor = o.scheduledFor?.toISOString() ?? null
  const base = { run: o.runId, job: job.name }

  // The lock: a job never runs twice at once.
  let lock
  if (o.wait) {
    try {
      lock = await o.locks.acquire(jobLockName(job.name), { run: o.runId, purpose: o.kind }, { signal: o.signal, pollMs: o.wait.pollMs, onWait: o.wait.onWait })
    } catch (err) {
      if (o.signal.aborted) return { run: o.runId, result: 'interrupted', exitCode: o.exitCode('interrupted', err), error: err, event: null }
      throw err
    }
  } else {
    const a = await o.locks.tryAcquire(jobLockName(job.name), { run: o.runId, purpose: o.kind })
    if (!a.lock) {
      const h = a.holder
      await write({
        ...base, type: 'skipped', kind: o.kind, trigger: o.trigger, scheduled_for: scheduledFor, reason: 'running',
        holder: { pid: h.pid, host: h.host, boot_id: h.boot_id, proc_start: h.proc_start, run: h.run, since: h.since },
      })
      await flush()
      return { run: o.runId, result: 'skipped', exitCode: o.exitCode('skipped', null), error: null, event: null }
    }
    lock = a.lock
  }

  // A scheduled time runs once: another daemon on this configuration may have run it and released the lock
  // before this one asked for it. Its `started` event (written while it held the lock) says so.
  if (scheduledFor !== null) {
    const done = await startedElsewhere(journal, job.name, o.kind, scheduledFor, o.runId)
    if (done) {
      await lock.release()
      await write({
        ...base, type: 'skipped', kind: o.kind, trigger: o.trigger, scheduled_for: scheduledFor, reason: 'done',
        holder: { pid: done.pid, host: done.host, boot_id: done.boot_id, proc_start: done.proc_start, run: done.run, since: done.t },
      })
      await flush()
      return { run: o.runId, result: 'skipped', exitCode: o.exitCode('skipped', null), error: null, event: null }
    }
  }

  const startedAt = o.clock.now()
  try {
    await write({ ...base, type: 'started', kind: o.kind, trigger: o.trigger, scheduled_for: scheduledFor, job_type: job.type, ...processIdentity(o.host) })
    const maxAttempts = 1 + (o.retries ?? job.retries)
    let attempt = 0
    let outcome: BackupOutcome | null = null
    let check: CheckOutcome | null = null
    let error: unknown = null
    let postWarning: string | null = null

    for (attempt = 1; attempt <= maxAttempts; attempt++) {
      error = null
      postWarning = null
      try {
        if (!(await lock.isHeld())) throw new Error(`the lock of job ${job.name} was taken over by another process`)
        const r = await runAttempt(attempt)
        outcome = r.outcome
        check = r.check
        postWarning = r.postWarning
        break
      } catch (err) {
        error = err
        if (o.signal.aborted || !isRetryable(err) || attempt === maxAttempts) {
          void write({ ...base, type: 'attempt_failed', attempt, error: message(err), retry_at: null })
          break
        }
        const retryAt = new Date(o.clock.now().getTime() + job.retryDelayMs * 2 ** (attempt - 1))
        void write({ ...base, type: 'attempt_failed', attempt, error: message(err), retry_at: retryAt.toISOString() })
        void write({ ...base, type: 'phase', phase: 'retry_wait', attempt, until: retryAt.toISOString() })
        await o.clock.sleepUntil(retryAt, o.signal)
        if (o.signal.aborted) {
          error = new InterruptedError('stopped while waiting to retry')
          break
        }
      }
    }
    attempt = Math.min(attempt, maxAttempts)

    // Retention, only after a fully successful backup.
    let retention: RetentionOutcome | null = null
    let retentionWarning: string | null = null
    if (!error && o.kind === 'backup' && outcome?.result === 'success' && job.retention && !o.signal.aborted) {
      void write({ ...base, type: 'phase', phase: 'retention', attempt })
      try {
        retention = await o.work.retention(context(attempt), { snapshot: outcome.snapshot })
      } catch (err) {
        retention = { ok: false, kept: 0, removed: 0, removed_ids: [], error: message(err) }
      }
      if (!retention.ok) {
        retentionWarning = `retention failed: ${retention.error ?? 'unknown error'}`
        void write({ ...base, type: 'log', level: 'error', source: 'retention', message: retentionWarning })
      } else {
        void write({ ...base, type: 'log', level: 'info', source: 'retention', message: `retention kept ${retention.kept} and removed ${retention.removed} snapshot${retention.removed === 1 ? '' : 's'}` })
      }
    }

    let result: RunResult
    let errorText: string | null = null
    if (error) {
      result = o.signal.aborted || error instanceof InterruptedError ? 'interrupted' : 'failed'
      errorText = message(error)
    } else if (o.kind === 'check') {
      result = check?.ok ? 'success' : 'failed'
      errorText = check?.ok ? null : (check?.problems[0] ?? 'the check failed')
    } else {
      const warnings = [outcome?.warning, postWarning, retentionWarning].filter((w): w is string => Boolean(w))
      result = outcome?.result === 'warning' || warnings.length ? 'warning' : 'success'
      errorText = warnings.length ? warnings.join('; ') : null
    }
    const exitCode = o.exitCode(result, error)
    const finishedInput: JournalEventInput = {
      ...base, type: 'finished', kind: o.kind, result, error: errorText, attempts: attempt,
      duration_ms: o.clock.now().getTime() - startedAt.getTime(),
      snapshot: outcome?.snapshot ?? null, stats: outcome?.stats ?? null, retention, check, exit_code: exitCode,
    }
    let finished: FinishedEvent | null = null
    const p = writing.then(() => journal.append(finishedInput)).then((x) => { finished = x as FinishedEvent; o.onJournal?.(x) }, (err: unknown) => { journalError ??= err })
    writing = p
    await flush()
    if (finished && o.onEvent) {
      const f = finished as FinishedEvent
      const kind: JobEvent['kind'] | null =
        o.kind === 'check' ? (result === 'success' ? 'success' : result === 'interrupted' ? null : 'verify_failure')
          : result === 'success' ? 'success' : result === 'warning' ? 'warning' : result === 'failed' ? 'failure' : null
      if (kind) {
        const what = o.kind === 'check' ? 'check' : 'backup'
        const text = result === 'success' ? `${job.name}: ${what} succeeded` : `${job.name}: ${what} ${result === 'warning' ? 'finished with a warning' : 'failed'}${errorText ? `: ${errorText}` : ''}`
        try {
          await o.onEvent({ kind, job: job.name, run: o.runId, message: text, t: f.t, event: f })
        } catch {
          // a notifier's failure is not the run's
        }
      }
    }
    return { run: o.runId, result, exitCode, error, event: finished }
  } finally {
    await lock.release()
  }

  function context(attempt: number): AttemptContext & { endPhase(): void } {
    let lastSample = 0
    let held: JournalEventInput | null = null
    let lastKey = ''
    let heldKey = ''
    const interval = o.progressIntervalMs ?? 10_000
    return {
      run: o.runId,
      attempt,
      signal: o.signal,
      log: (level, source, text) => void write({ ...base, type: 'log', level, source, message: text }),
      progress: (p) => {
        const sample: JournalEventInput = { ...base, type: 'progress', files: p.files, bytes: p.bytes, total_files: p.totalFiles, total_bytes: p.totalBytes }
        const now = o.clock.now().getTime()
        const key = `${p.files}/${p.bytes}/${p.totalFiles}/${p.totalBytes}`
        if (key === lastKey) return
        if (now - lastSample >= interval) {
          lastSample = now
          lastKey = key
          held = null
          void write(sample)
        } else {
          held = sample
          heldKey = key
        }
      },
      /** Writes the last sample when it was held back by the interval. */
      endPhase: () => {
        if (held) {
          if (heldKey !== lastKey) void write(held)
          lastKey = heldKey
        }
        held = null
      },
    }
  }

  async function hooks(which: 'pre_hook' | 'post_hook', attempt: number, resultForPost: string | null): Promise<void> {
    const list = which === 'pre_hook' ? job.preHooks : job.postHooks
    if (list.length === 0) return
    void write({ ...base, type: 'phase', phase: which, attempt })
    for (let i = 0; i < list.length; i++) {
      const command = list[i]
      const label = `${which === 'pre_hook' ? 'pre' : 'post'}-hook ${i + 1}`
      void write({ ...base, type: 'log', level: 'info', source: 'coldstore', message: `${label}: ${command}` })
      const r = await runHook({
        command, cwd: o.hooks.cwd, timeoutMs: job.hookTimeoutMs,
        // Post-hooks run to the end also when the run is being stopped: they undo what pre-hooks did.
        signal: which === 'pre_hook' ? o.signal : undefined,
        env: { ...o.hooks.env, COLDSTORE_JOB: job.name, COLDSTORE_RUN: o.runId, COLDSTORE_PHASE: which, ...(resultForPost ? { COLDSTORE_RESULT: resultForPost } : {}) },
        onLine: (stream, line) => void write({ ...base, type: 'log', level: stream === 'stderr' ? 'warn' : 'info', source: 'hook', message: line }),
      })
      if (r.stopped) throw new InterruptedError(`${label} was stopped`)
      if (r.code !== 0) {
        const how = r.timedOut ? `timed out after ${Math.round(job.hookTimeoutMs / 1000)} s` : r.code !== null ? `exit code ${r.code}` : `signal ${r.signal}`
        const text = `${label} failed (${how}): ${command}`
        void write({ ...base, type: 'log', level: 'error', source: 'coldstore', message: text })
        throw new HookFailed(text)
      }
    }
  }

  async function runAttempt(attempt: number): Promise<{ outcome: BackupOutcome | null; check: CheckOutcome | null; postWarning: string | null }> {
    const phase = (p: RunPhase): void => void write({ ...base, type: 'phase', phase: p, attempt })
    const ctx = context(attempt)
    if (o.kind === 'check') {
      phase('check')
      const check = await o.work.check(ctx)
      if (o.signal.aborted) throw new InterruptedError('the check was stopped')
      return { outcome: null, check, postWarning: null }
    }
    let outcome: BackupOutcome | null = null
    let failure: unknown = null
    try {
      await hooks('pre_hook', attempt, null)
      phase('backup')
      outcome = await o.work.backup(ctx)
      ctx.endPhase()
    } catch (err) {
      ctx.endPhase()
      failure = err
    }
    let postWarning: string | null = null
    try {
      await hooks('post_hook', attempt, failure ? (o.signal.aborted ? 'interrupted' : 'failed') : (outcome?.result ?? 'success'))
    } catch (err) {
      postWarning = message(err)
    }
    if (failure) throw failure
    if (o.signal.aborted) throw new InterruptedError('stopped')
    return { outcome, check: null, postWarning }
  }
}

/** The `started` event of another run of `job` for the fire time `scheduledFor`, from that day's journal on. */
async function startedElsewhere(journal: Journal, job: string, kind: RunKind, scheduledFor: string, self: string): Promise<StartedEvent | null> {
  const day = scheduledFor.slice(0, 10)
  for (const f of await journal.files()) {
    if (f.day < day) continue
    for await (const e of journal.read(f)) {
      if (e.type === 'started' && e.job === job && e.kind === kind && e.scheduled_for === scheduledFor && e.run !== self) return e
    }
  }
  return null
}
