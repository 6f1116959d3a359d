/**
 * Schedules of jobs: cron expressions and presets, time-zone aware, as pure functions of an injected
 * time (no timers here: the daemon owns the clock). Cron arithmetic is croner's (DST-correct: a local
 * time that does not exist on a spring-forward day runs at the next valid time; one that occurs twice on
 * a fall-back day runs once).
 */
import { Cron } from 'croner'
import { ConfigError } from '../errors.js'

/** Presets and the cron expression each stands for (local time of the schedule's zone). */
export const SCHEDULE_PRESETS: Readonly<Record<string, string>> = {
  hourly: '0 * * * *',
  daily: '0 3 * * *',
  weekly: '0 3 * * 0',
  monthly: '0 3 1 * *',
}

/** A parsed schedule. */
export interface Schedule {
  /** As written in the configuration (`daily`, `0 3 * * *`). */
  spec: string
  /** The cron expression it stands for. */
  cron: string
  /** IANA time zone its times are in (`Europe/Berlin`), or `UTC`. */
  timezone: string
}

function cronOf(s: Schedule): Cron {
  return new Cron(s.cron, { timezone: s.timezone, paused: true, mode: '5-part' })
}

/**
 * Parses a schedule: a preset (`hourly`, `daily`, `weekly`, `monthly`, also with a leading `@`) or a
 * five-field cron expression (minute hour day-of-month month day-of-week).
 *
 * @throws ConfigError for anything else, or an unknown time zone.
 */
export function parseSchedule(spec: string, timezone = 'UTC'): Schedule {
  const trimmed = spec.trim()
  const preset = SCHEDULE_PRESETS[trimmed.replace(/^@/, '').toLowerCase()]
  const cron = preset ?? trimmed.replace(/\s+/g, ' ')
  try {
    Intl.DateTimeFormat('en', { timeZone: timezone })
  } catch (err) {
    throw new ConfigError(`unknown time zone ${JSON.stringify(timezone)} (use an IANA name like Europe/Berlin, or UTC)`, { cause: err })
  }
  if (!preset && cron.split(' ').length !== 5) {
    throw new ConfigError(`schedule ${JSON.stringify(spec)}: expected hourly, daily, weekly, monthly or a cron expression of five fields (minute hour day month weekday)`)
  }
  const s: Schedule = { spec: trimmed, cron, timezone }
  try {
    cronOf(s)
  } catch (err) {
    throw new ConfigError(`schedule ${JSON.stringify(spec)}: ${(err as Error).message}`, { cause: err })
  }
  return s
}

/** The first time the schedule fires strictly after `after`, or null if it never does again. */
export function nextRun(s: Schedule, after: Date): Date | null {
  return cronOf(s).nextRun(after)
}

/**
 * The latest time the schedule fired at or before `at` (searching back at most `lookbackDays`), or null.
 * The daemon compares it with the last run it started to find a run missed while it was down.
 */
export function previousRun(s: Schedule, at: Date, lookbackDays = 400): Date | null {
  const c = cronOf(s)
  // croner has no reverse iteration: walk forward through growing windows before `at`, so an hourly
  // schedule looks at an hour or two, a yearly one at up to `lookbackDays`.
  for (const hours of [2, 48, 24 * 8, 24 * 32, 24 * lookbackDays]) {
    let from = new Date(at.getTime() - hours * 3_600_000)
    let last: Date | null = null
    for (;;) {
      const next = c.nextRun(from)
      if (!next || next.getTime() > at.getTime()) break
      last = next
      from = next
    }
    if (last) return last
    if (hours >= 24 * lookbackDays) break
  }
  return null
}

/**
 * Fire times missed between `lastRun` (exclusive; null: never ran, counted from `since`) and `now`
 * (inclusive), oldest first, at most `limit` of them (a job down for a year has thousands).
 */
export function missedRuns(s: Schedule, o: { lastRun: Date | null; since: Date; now: Date; limit?: number }): Date[] {
  const c = cronOf(s)
  const out: Date[] = []
  let from = o.lastRun ?? o.since
  const limit = o.limit ?? 100
  while (out.length < limit) {
    const next = c.nextRun(from)
    if (!next || next.getTime() > o.now.getTime()) break
    out.push(next)
    from = next
  }
  return out
}
