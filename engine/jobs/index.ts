/**
 * jobs/: the jobs runtime. Locks across processes, the run journal, a run from hooks to retention with
 * retries, job status and health, and the daemon's scheduler over an injected clock. The top of the engine:
 * it imports config/, schedule/, backup/, verify/, filter/ and below; nothing below imports it.
 */
export type {
  RunKind, RunTrigger, RunPhase, RunResult, RunStats, RetentionOutcome, CheckOutcome, ProcessIdentity, JournalEvent, JournalEventInput,
  StartedEvent, PhaseEvent, ProgressEvent, LogEvent, AttemptFailedEvent, FinishedEvent, SkippedEvent, MissedEvent, DaemonEvent,
} from './events.js'
export { isProcessAlive, processIdentity } from './process-identity.js'
export { JobLocks, HeldLock, type LockRecord, type LockAttempt, type JobLocksOptions } from './lock.js'
export { Journal, dayOf, parseJournalText, type JournalFile, type JournalManifest, type ManifestEntry, type MaintenanceReport, type JournalFinding, type JournalOptions } from './journal.js'
export { newRunId, isRunId, runDay, summarizeRuns, type RunSummary } from './runs.js'
export { jobStatus, lateToleranceMs, scheduleIntervalMs, runReference, type JobStatus, type RunBrief, type Health } from './health.js'
export { readJournalState, jobStatuses, findRunDay, readRun, type JournalState } from './state.js'
export { ManualClock, type Clock } from './clock.js'
export { formatJournalEvent } from './format.js'
export { runHook, type HookResult, type RunHookOptions } from './hooks.js'
export { resticBackup, resticCheck, resticForget, resticKeepArgs, resticJobTag, type ResticContext, type ResticBackupResult } from './restic.js'
export {
  runJob, isRetryable, jobLockName,
  type RunJobOptions, type RunOutcome, type JobWork, type AttemptContext, type BackupOutcome, type JobEvent, type JobEventSink,
} from './runner.js'
export { engineWork, resticWork, type EngineWorkOptions, type ResticWorkOptions } from './work.js'
export { Daemon, type DaemonOptions, type DaemonRun, type WorkerRequest, type WorkerHandle, type StartWorker, type RunRequestResult } from './daemon.js'
