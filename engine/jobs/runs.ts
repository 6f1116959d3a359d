/**
 * Runs as the journal tells them: the events of each run folded into one summary. A run that started but
 * never finished, and whose process is gone, is reported as `interrupted` (lost with its process).
 */
import { randomBytes } from 'node:crypto'
import type {
  CheckOutcome, JournalEvent, ProcessIdentity, RetentionOutcome, RunKind, RunPhase, RunResult, RunStats, RunTrigger,
} from './events.js'

/** One run, summarized. */
export interface RunSummary {
  id: string
  job: string
  kind: RunKind
  trigger: RunTrigger
  scheduled_for: string | null
  /** When it started (or was skipped). */
  started: string
  finished: string | null
  /** `running` until its finished event; `finished` (also for skipped runs). */
  state: 'running' | 'finished'
  result: RunResult | null
  /** The phase it is in (running) or ended in. */
  phase: RunPhase | null
  attempt: number
  /** While waiting to retry: when the next attempt starts. */
  retry_at: string | null
  error: string | null
  duration_ms: number | null
  snapshot: string | null
  stats: RunStats | null
  retention: RetentionOutcome | null
  check: CheckOutcome | null
  /** The latest progress sample. */
  progress: { files: number; bytes: number; total_files: number | null; total_bytes: number | null; t: string } | null
  exit_code: number | null
  process: ProcessIdentity | null
}

/** A new run id: its start time (UTC, to the second) and 6 random hex digits: `20260510T030000Z-a1b2c3`. */
export function newRunId(now: Date): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`
}

/** True for the form of `newRunId`. */
export function isRunId(s: string): boolean {
  return /^\d{8}T\d{6}Z-[0-9a-f]{6}$/.test(s)
}

/** The UTC day a run id's run started on. */
export function runDay(id: string): string {
  return `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}`
}

/**
 * Folds events (oldest first) into run summaries, in order of their first event. `alive` tells whether a
 * running run's process still lives (a dead one's run is reported interrupted).
 */
export function summarizeRuns(events: Iterable<JournalEvent>, alive: (p: ProcessIdentity) => boolean): RunSummary[] {
  const runs = new Map<string, RunSummary>()
  for (const e of events) {
    if (e.run === null) continue
    let r = runs.get(e.run)
    if (e.type === 'started' || e.type === 'skipped') {
      r = {
        id: e.run, job: e.job, kind: e.kind, trigger: e.trigger, scheduled_for: e.scheduled_for, started: e.t, finished: null,
        state: 'running', result: null, phase: null, attempt: 1, retry_at: null, error: null, duration_ms: null, snapshot: null,
        stats: null, retention: null, check: null, progress: null, exit_code: null,
        process: e.type === 'started' ? { pid: e.pid, host: e.host, boot_id: e.boot_id, proc_start: e.proc_start } : null,
      }
      if (e.type === 'skipped') {
        r.state = 'finished'
        r.result = 'skipped'
        r.finished = e.t
        r.duration_ms = 0
        r.exit_code = 5
        const what = e.reason === 'done' ? `already run for ${e.scheduled_for}` : 'already running'
        r.error = e.holder ? `${what} (pid ${e.holder.pid} on ${e.holder.host}${e.holder.run ? `, run ${e.holder.run}` : ''}, since ${e.holder.since})` : what
      }
      runs.set(e.run, r)
      continue
    }
    if (!r) continue // its start is in a file no longer kept
    switch (e.type) {
      case 'phase':
        r.phase = e.phase
        r.attempt = e.attempt
        r.retry_at = e.phase === 'retry_wait' ? (e.until ?? null) : null
        break
      case 'progress':
        r.progress = { files: e.files, bytes: e.bytes, total_files: e.total_files, total_bytes: e.total_bytes, t: e.t }
        break
      case 'attempt_failed':
        r.error = e.error
        r.retry_at = e.retry_at
        break
      case 'finished':
        r.state = 'finished'
        r.finished = e.t
        r.result = e.result
        r.error = e.error
        r.attempt = e.attempts
        r.duration_ms = e.duration_ms
        r.snapshot = e.snapshot
        r.stats = e.stats
        r.retention = e.retention
        r.check = e.check
        r.exit_code = e.exit_code
        r.retry_at = null
        break
      default:
        break
    }
  }
  const out = [...runs.values()]
  for (const r of out) {
    if (r.state === 'running' && r.process && !alive(r.process)) {
      r.state = 'finished'
      r.result = 'interrupted'
      r.error = r.error ? `${r.error}; then its process ended without finishing` : 'its process ended without finishing (killed, crashed, or the machine went down)'
    }
  }
  return out
}
