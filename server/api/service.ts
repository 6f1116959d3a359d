import type { JobStatus, JournalEvent, RunKind, RunRequestResult, RunSummary } from '../../engine/index.js'

/**
 * What the JSON API serves: implemented by the daemon (engine's Daemon fits it as it is). The dashboard
 * adds routes over the same service.
 */
export interface JobsService {
  /** Every job's status, in configuration order. */
  statuses(): Promise<JobStatus[]>
  /** Runs, newest first; of one job when given. */
  runs(o: { job?: string; limit?: number }): Promise<RunSummary[]>
  /** One run with its journal events, or null. */
  run(id: string): Promise<{ run: RunSummary; events: JournalEvent[] } | null>
  /** A run's events from its start, then live, until its end or `signal`. */
  follow(id: string, signal: AbortSignal): AsyncIterable<JournalEvent>
  /** Starts a run now. */
  requestRun(job: string, kind: RunKind): Promise<RunRequestResult>
}
