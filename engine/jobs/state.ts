/**
 * What the journal says about all jobs: every run summarized and every missed-run report, read in one pass
 * (for `coldstore jobs` and the daemon's status), and the status of each configured job.
 */
import type { JobDefinition } from '../config/index.js'
import type { JournalEvent, MissedEvent, ProcessIdentity } from './events.js'
import { jobStatus, type JobStatus } from './health.js'
import type { Journal } from './journal.js'
import { isRunId, runDay, summarizeRuns, type RunSummary } from './runs.js'

/** Runs and missed reports of the whole journal. */
export interface JournalState {
  runs: RunSummary[]
  missed: MissedEvent[]
}

/** Reads the whole journal (oldest first). */
export async function readJournalState(journal: Journal, alive: (p: ProcessIdentity) => boolean): Promise<JournalState> {
  const events: JournalEvent[] = []
  const missed: MissedEvent[] = []
  for await (const e of journal.events()) {
    if (e.type === 'missed') missed.push(e)
    else if (e.run !== null) events.push(e)
  }
  return { runs: summarizeRuns(events, alive), missed }
}

/** The status of every job, in configuration order. */
export function jobStatuses(jobs: Iterable<JobDefinition>, state: JournalState, now: Date): JobStatus[] {
  return [...jobs].map((j) => jobStatus(j, state.runs, state.missed, now))
}

/**
 * The UTC day of the journal file holding a run's first event: the day in its id when that file has it
 * (the usual case), else found by reading the journal newest first. Null when the run is not there.
 */
export async function findRunDay(journal: Journal, id: string): Promise<string | null> {
  if (!isRunId(id)) return null
  const files = await journal.files()
  const guess = files.find((f) => f.day === runDay(id))
  const ordered = guess ? [guess, ...files.filter((f) => f !== guess).reverse()] : [...files].reverse()
  for (const f of ordered) {
    for await (const e of journal.read(f)) {
      if (e.run === id && (e.type === 'started' || e.type === 'skipped')) return f.day
    }
  }
  return null
}

/** A run and its events (oldest first), or null when the journal does not have it. */
export async function readRun(journal: Journal, id: string, alive: (p: ProcessIdentity) => boolean): Promise<{ run: RunSummary; events: JournalEvent[] } | null> {
  const day = await findRunDay(journal, id)
  if (!day) return null
  const events: JournalEvent[] = []
  for await (const e of journal.events({ fromDay: day })) {
    if (e.run !== id) continue
    events.push(e)
    if (e.type === 'finished' || e.type === 'skipped') break
  }
  const [run] = summarizeRuns(events, alive)
  return run ? { run, events } : null
}
