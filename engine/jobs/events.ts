/**
 * The run journal's events: one JSON object per line, appended, never rewritten. The shapes below are the
 * stored format (field names in snake_case, like every JSON coldstore writes) and what the JSON API serves.
 */

/** What a run does: back up the job's sources, or check its repository (`restic check` / `coldstore verify`). */
export type RunKind = 'backup' | 'check'

/** Why a run started. `missed`: a run the daemon missed while it was down, run once when it came back. */
export type RunTrigger = 'schedule' | 'missed' | 'manual' | 'api'

/** Steps of a run, in order (`retry_wait` between attempts). */
export type RunPhase = 'pre_hook' | 'backup' | 'check' | 'post_hook' | 'retention' | 'retry_wait'

/**
 * How a run ended. `warning`: the snapshot was written but something was not right (files that could not be
 * read, a failing post-hook, retention that failed); `interrupted`: stopped by a signal or lost with its
 * process; `skipped`: not started because the job was already running elsewhere.
 */
export type RunResult = 'success' | 'warning' | 'failed' | 'interrupted' | 'skipped'

/** Who holds (or held) a job's lock: enough to tell whether that process still lives. */
export interface ProcessIdentity {
  pid: number
  host: string
  /** Linux boot id (/proc/sys/kernel/random/boot_id): a pid from another boot is dead. */
  boot_id: string | null
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): a reused pid has another. */
  proc_start: string | null
}

/** Numbers of a finished backup (coldstore's snapshot stats, or restic's summary mapped to the same names). */
export interface RunStats {
  files: number
  dirs: number | null
  bytes: number
  new_files: number
  changed_files: number
  unchanged_files: number
  /** Bytes the run added to the repository. */
  added_bytes: number
  /** Entries that could not be read (the snapshot was written without them). */
  unreadable: number
  duration_s: number
}

/** What retention did after a successful backup. */
export interface RetentionOutcome {
  ok: boolean
  kept: number
  removed: number
  /** Ids of the snapshots removed. */
  removed_ids: string[]
  error: string | null
}

/** What a check run found. */
export interface CheckOutcome {
  ok: boolean
  /** Problems as one line each (at most 100). */
  problems: string[]
  /** Share of the data read (0: structure only). */
  read_data_fraction: number
}

interface Base {
  /** Journal format version. */
  v: 1
  /** When the event was written (ISO 8601, UTC). */
  t: string
}

/** A run began (its lock is held). */
export interface StartedEvent extends Base, ProcessIdentity {
  type: 'started'
  run: string
  job: string
  kind: RunKind
  trigger: RunTrigger
  /** The schedule's fire time this run is for (null: manual). */
  scheduled_for: string | null
  job_type: string
}

export interface PhaseEvent extends Base {
  type: 'phase'
  run: string
  job: string
  phase: RunPhase
  attempt: number
  /** For retry_wait: when the next attempt starts. */
  until?: string
}

/** A progress sample (written at most every progress interval, and at the end of a phase). */
export interface ProgressEvent extends Base {
  type: 'progress'
  run: string
  job: string
  files: number
  bytes: number
  total_files: number | null
  total_bytes: number | null
}

export interface LogEvent extends Base {
  type: 'log'
  run: string
  job: string
  level: 'info' | 'warn' | 'error'
  /** `hook` (a pre/post-hook's output), `backup` (the engine's warnings), `restic`, `retention`, `coldstore`. */
  source: 'hook' | 'backup' | 'restic' | 'retention' | 'coldstore'
  message: string
}

export interface AttemptFailedEvent extends Base {
  type: 'attempt_failed'
  run: string
  job: string
  attempt: number
  error: string
  /** When the next attempt starts, or null when this was the last. */
  retry_at: string | null
}

export interface FinishedEvent extends Base {
  type: 'finished'
  run: string
  job: string
  kind: RunKind
  result: RunResult
  error: string | null
  attempts: number
  duration_ms: number
  /** The snapshot written (coldstore id, or restic's snapshot id), or null. */
  snapshot: string | null
  stats: RunStats | null
  retention: RetentionOutcome | null
  check: CheckOutcome | null
  /** The exit code `coldstore run` exits with for this result. */
  exit_code: number
}

/**
 * A run that did not start: the job was already running (in another process, or another daemon), or
 * (`reason: 'done'`, scheduled runs only) another process already ran this scheduled time: two daemons on
 * one configuration run each fire time once. `holder` is then the process that ran it.
 */
export interface SkippedEvent extends Base {
  type: 'skipped'
  run: string
  job: string
  kind: RunKind
  trigger: RunTrigger
  scheduled_for: string | null
  reason: 'running' | 'done'
  holder: (ProcessIdentity & { run: string | null; since: string }) | null
}

/** Fire times a daemon found it had missed (it was down, or the machine slept), and what it did about them. */
export interface MissedEvent extends Base {
  type: 'missed'
  run: null
  job: string
  kind: RunKind
  /** The missed fire times, oldest first (the first 100). */
  scheduled_for: string[]
  /** How many were missed (counted up to 100,000). */
  count: number
  /** The latest missed fire time (a run for them, with policy `run`, is for this one). */
  latest: string
  /** `run`: one run was started for them (its trigger is `missed`); `skip`: only reported. */
  policy: 'run' | 'skip'
}

/** A daemon started or stopped. */
export interface DaemonEvent extends Base {
  type: 'daemon'
  run: null
  job: null
  state: 'started' | 'stopped'
  pid: number
  host: string
  jobs: string[]
  listen: string | null
}

/** Any journal event. */
export type JournalEvent =
  | StartedEvent | PhaseEvent | ProgressEvent | LogEvent | AttemptFailedEvent | FinishedEvent | SkippedEvent | MissedEvent | DaemonEvent

/** Distributes Omit over a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** An event as given to `Journal.append` (version and time are added). */
export type JournalEventInput = DistributiveOmit<JournalEvent, 'v' | 't'>

/** Longest log message stored (longer ones are cut, marked with …). */
export const MAX_LOG_MESSAGE = 4096
