/**
 * Job status and health (green / yellow / red) from the journal's runs, as a pure function of the time.
 *
 * red: the last backup run failed or was interrupted; a missed run was reported and no run started since;
 *      two or more scheduled runs did not happen (no daemon running?); the last check failed.
 * yellow: never run; running late (a fire time passed more than the tolerance ago with no run since);
 *      retrying; the last run ended with a warning; the last success is older than twice the interval.
 * green: otherwise.
 */
import type { JobDefinition } from '../config/index.js'
import { missedRuns, nextRun, previousRun, type Schedule } from '../schedule/index.js'
import type { MissedEvent, RunResult } from './events.js'
import type { RunSummary } from './runs.js'

/** A run in a job's status. */
export interface RunBrief {
  id: string
  trigger: RunSummary['trigger']
  started: string
  finished: string | null
  result: RunResult | null
  phase: RunSummary['phase']
  attempt: number
  retry_at: string | null
  duration_ms: number | null
  snapshot: string | null
  error: string | null
}

export type Health = 'green' | 'yellow' | 'red'

/** `coldstore jobs --json` and `GET /api/jobs`: one job. */
export interface JobStatus {
  name: string
  type: JobDefinition['type']
  /** The schedule as written (`daily`, `0 3 * * *`), or null (manual runs only). */
  schedule: string | null
  timezone: string
  missed_policy: JobDefinition['missed']
  next_run: string | null
  /** The run in progress, if any. */
  running: RunBrief | null
  /** The last finished backup run (runs skipped because the job was running elsewhere are not counted). */
  last_run: RunBrief | null
  last_success: RunBrief | null
  /** The last missed-runs report, when no run started after it. */
  missed: { t: string; count: number; scheduled_for: string[]; policy: 'run' | 'skip' } | null
  /** The periodic check (`restic check` / `coldstore verify`), if the job has one. */
  check: { schedule: string; next_run: string | null; last: RunBrief | null } | null
  health: Health
  /** Why it is not green (empty when green). */
  reasons: string[]
  /** Numbers of the last successful backup's snapshot. */
  last_snapshot: { id: string; bytes: number; files: number; added_bytes: number } | null
  /** Bytes the job's runs in the journal added to its repository (before anything was pruned). */
  added_bytes_total: number
}

function brief(r: RunSummary | undefined): RunBrief | null {
  if (!r) return null
  return {
    id: r.id, trigger: r.trigger, started: r.started, finished: r.finished, result: r.result, phase: r.phase, attempt: r.attempt,
    retry_at: r.retry_at, duration_ms: r.duration_ms, snapshot: r.snapshot, error: r.error,
  }
}

/** The schedule's current interval: the gap between the fire times around `now` (ms), or null. */
export function scheduleIntervalMs(s: Schedule, now: Date): number | null {
  const prev = previousRun(s, now)
  const next = nextRun(s, now)
  if (!prev || !next) return null
  return next.getTime() - prev.getTime()
}

/** How late a fire time may be noticed and still count as on time: 15 minutes, or a quarter of the interval when shorter. */
export function lateToleranceMs(s: Schedule, now: Date): number {
  const interval = scheduleIntervalMs(s, now) ?? 3_600_000
  return Math.max(1000, Math.min(15 * 60_000, interval / 4))
}

/** The time a run counts for in schedule bookkeeping: the fire time it ran for, else its start. */
export function runReference(r: RunSummary): Date {
  return new Date(r.scheduled_for ?? r.started)
}

const t = (s: string): number => Date.parse(s)

/**
 * The status of one job. `runs` are the job's runs (any order); `missed` its missed-run reports.
 */
export function jobStatus(job: JobDefinition, runs: readonly RunSummary[], missed: readonly MissedEvent[], now: Date): JobStatus {
  const mine = runs.filter((r) => r.job === job.name).sort((a, b) => t(a.started) - t(b.started))
  const backups = mine.filter((r) => r.kind === 'backup')
  const checks = mine.filter((r) => r.kind === 'check')
  const running = mine.filter((r) => r.state === 'running').pop()
  const done = backups.filter((r) => r.state === 'finished' && r.result !== 'skipped')
  const last = done[done.length - 1]
  const successes = done.filter((r) => r.result === 'success' || r.result === 'warning')
  const lastSuccess = successes[successes.length - 1]
  const lastStart = backups.filter((r) => r.result !== 'interrupted').pop()
  const lastMissed = missed.filter((m) => m.job === job.name && m.kind === 'backup').sort((a, b) => t(a.t) - t(b.t)).pop()
  const missedOpen = lastMissed && !backups.some((r) => t(r.started) >= t(lastMissed.t)) ? lastMissed : undefined
  const lastCheck = checks.filter((r) => r.state === 'finished' && r.result !== 'skipped').pop()

  const red: string[] = []
  const yellow: string[] = []
  if (last && (last.result === 'failed' || last.result === 'interrupted')) red.push(`the last run ${last.result === 'failed' ? 'failed' : 'was interrupted'}${last.error ? `: ${last.error}` : ''}`)
  if (missedOpen) red.push(`${missedOpen.count} scheduled run${missedOpen.count === 1 ? ' was' : 's were'} missed (${missedOpen.policy === 'skip' ? 'not run: missed: skip' : 'reported'})`)
  if (lastCheck && lastCheck.result !== 'success') red.push(`the last check ${lastCheck.result === 'failed' ? 'failed' : `ended ${lastCheck.result}`}${lastCheck.error ? `: ${lastCheck.error}` : ''}`)
  if (job.schedule) {
    const ref = lastStart ? runReference(lastStart) : null
    if (ref) {
      const due = missedRuns(job.schedule, { lastRun: ref, since: ref, now, limit: 3 })
      if (due.length >= 2 && !running) red.push(`${due.length >= 3 ? '3 or more' : '2'} scheduled runs did not happen (since ${due[0].toISOString()}; is the daemon running?)`)
      else if (due.length === 1 && !running && now.getTime() - due[0].getTime() > lateToleranceMs(job.schedule, now)) yellow.push(`running late: the run due at ${due[0].toISOString()} has not started`)
      const interval = scheduleIntervalMs(job.schedule, now)
      if (interval !== null && lastSuccess && now.getTime() - t(lastSuccess.finished ?? lastSuccess.started) > 2 * interval) {
        yellow.push(`the last success is older than twice the interval (${lastSuccess.finished ?? lastSuccess.started})`)
      }
    }
  }
  if (!last && !running) yellow.push('never run')
  if (running && (running.attempt > 1 || running.phase === 'retry_wait')) yellow.push(`retrying (attempt ${running.attempt}${running.retry_at ? `, next at ${running.retry_at}` : ''})`)
  if (last?.result === 'warning') yellow.push(`the last run ended with a warning${last.error ? `: ${last.error}` : ''}`)
  if (last && last.result !== 'success' && last.result !== 'warning' && !lastSuccess) yellow.push('no successful run yet')

  const check = job.restic?.checkSchedule ?? job.verify?.schedule ?? null
  const snap = lastSuccess?.stats && lastSuccess.snapshot ? { id: lastSuccess.snapshot, bytes: lastSuccess.stats.bytes, files: lastSuccess.stats.files, added_bytes: lastSuccess.stats.added_bytes } : null
  return {
    name: job.name,
    type: job.type,
    schedule: job.schedule?.spec ?? null,
    timezone: job.schedule?.timezone ?? 'UTC',
    missed_policy: job.missed,
    next_run: job.schedule ? (nextRun(job.schedule, now)?.toISOString() ?? null) : null,
    running: brief(running),
    last_run: brief(last),
    last_success: brief(lastSuccess),
    missed: missedOpen ? { t: missedOpen.t, count: missedOpen.count, scheduled_for: missedOpen.scheduled_for, policy: missedOpen.policy } : null,
    check: check ? { schedule: check.spec, next_run: nextRun(check, now)?.toISOString() ?? null, last: brief(lastCheck) } : null,
    health: red.length ? 'red' : yellow.length ? 'yellow' : 'green',
    reasons: [...red, ...yellow],
    last_snapshot: snap,
    added_bytes_total: successes.reduce((n, r) => n + (r.stats?.added_bytes ?? 0), 0),
  }
}
